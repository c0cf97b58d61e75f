"""Can't Be Late: spot-instance scheduling under deadlines (problems `cbl` and `cbl-multi`).

Trusted side: `traces` (synthetic and real availability traces, and where each lies in
time), `simulator` (the vectorised tick-level accounting of the NSDI'24 reference
simulator), `partition` (which scenarios cannot inform one another, so may share a
process), `lockstep` (drives every scenario of an evaluation together, one message per
tick to each group's sandbox), `scenarios` (the bundled scenario sets) and `evaluate`
(the evaluator entry points and scores).
`harness.py` runs inside the sandbox next to the candidate and holds the policy objects.
"""
