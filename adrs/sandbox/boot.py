"""Starts child.py in the sandbox from its cached bytecode.

A script given to `python` is compiled on every start (2 ms for child.py, paid by every
evaluation); a module loaded through its loader uses __pycache__, which isolation.py
fills once. Stdlib only; adrs need not be importable here.
"""

import os
import sys
from importlib.machinery import SourceFileLoader

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
_child = type(sys)("_adrs_sandbox_child")
_child.__file__ = _PATH
sys.modules[_child.__name__] = _child
SourceFileLoader(_child.__name__, _PATH).exec_module(_child)
sys.exit(_child.main(sys.argv))
