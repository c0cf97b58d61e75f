"""The sandbox side of `adrs problems check --adversarial` (the trusted side: adversarial.py).

Never imported by the sandbox: adrs is not importable there and no adrs file is visible.
probe_payload.py concatenates these modules into one self-contained text (the payload),
which adversarial.py appends to a problem's initial program; inside the sandbox that text
runs as the module `_adrs_probe` and `install(config)` starts one probe. The modules must
therefore run where adrs is not importable: stdlib only (numpy only where the sandbox
already loaded it), and between themselves only `from adrs.problem.probes.<module> import
<names>` at the top of a module, which the payload drops (the names are defined above them
there). All of them share one namespace in the payload: no two may define the same name.

The modules, in the payload's order (each imports only those before it):
core (the names they share, the output channel on stderr, `Probe`), series (encoding a
numeric series, the bits of surprise of a window), replay (input replay and memoize),
memory (walking gc and namespaces), overlap (series overlap), trusted (trusted data),
persist (persistent state), timing (timing games), claims (self-score), entry (`install`).

The hook. child.py, the sandbox's server, answers every request of the trusted side,
`{"fn": name, "args": [...]}`, with `handle(request)`, which it looks up at each request
among the globals of the module registered as sys.modules["_adrs_sandbox_child"] (boot.py
and the zygote's forkserver.py both register it under that name). Replacing that attribute
from the program's own code, at import time, wraps every call the trusted side makes,
whatever the problem's interface (numpy arrays for EPLB, lockstep `harness.step(message)`
for CBL): the wrapper sees every input and every reply, and may reply without calling the
program. Any candidate program can do this; the kit does it to play the games a candidate
could play. `install` also wraps the program's own functions and methods when the probe
needs to see what a harness passes them (and the harness's frames above them).

Each probe bounds its own cost: analysis stops once it has used `budget_s` seconds (the
status line then says `budget=spent`), and stored series and vectors are bounded in count
and size.
"""
