"""Helpers for the GPU tests live in cudakit.py beside this file."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
