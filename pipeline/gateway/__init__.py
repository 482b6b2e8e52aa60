"""The execution gateway: pre-trade risk, request encoding and signing (this package's kernels live
in ext/risk.pyx and ext/sign.pyx; each has a pure-Python twin here: risk_py.py, sign_py.py).

Facades that pick the compiled kernel: `pipeline.gateway.risk`, `pipeline.gateway.signing`.
"""
