"""The pixseek command line."""
