#!/usr/bin/python3
# placeholder: replaced by the PyTorch reference
import sys, os
os.makedirs(sys.argv[2], exist_ok=True)
