"""Minimal stand-in for the parts of nose that MXNet 1.9's unit tests import (nose does not run
on Python 3.11). Harness only; not part of the engine."""
