"""Calibration: configuration versions, calibration proposals, the Calibrator."""
