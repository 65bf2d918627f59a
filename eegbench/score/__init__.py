"""`eegbench score`: the benchmark's metrics on predictions made outside eegbench."""
