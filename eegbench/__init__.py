"""eegbench: a benchmark suite for decoding EEG into images and text."""

__version__ = "0.1.0"
