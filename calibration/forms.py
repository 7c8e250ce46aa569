"""Forms of the risk lead's calibration pages."""

from django import forms

from governance.engine import CALIBRATABLE_PARAMETERS
from governance.engine.config import SPECS


class ProposeForm(forms.Form):
    parameter = forms.ChoiceField(choices=[(name, f"{name} ({SPECS[name].rule})")
                                           for name in sorted(CALIBRATABLE_PARAMETERS)])
    new_value = forms.FloatField(label="New value")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000,
                                    help_text="Why the threshold should change: the evidence you rely on.")


class StepForm(forms.Form):
    """Approve or reject: a required comment and an explicit confirmation."""

    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    confirm = forms.BooleanField(label="I have reviewed the values, the drift history and the impact preview")


class WithdrawForm(forms.Form):
    """The proposer takes the proposal back: a required reason."""

    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
