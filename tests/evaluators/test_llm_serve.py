"""llm-serve's trusted side: the cost model, the workloads, the replica's rules, and the
harness's views kept in step with the simulator (tiny scenarios, trusted programs in
process)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from adrs.errors import UserError
from adrs.evaluators.llm_serve.costmodel import MISTRAL_7B_A100, blocks_for
from adrs.evaluators.llm_serve.decisions import PolicyError, parse_reply
from adrs.evaluators.llm_serve.evaluate import configured, run
from adrs.evaluators.llm_serve.lockstep import LocalPort, simulate
from adrs.evaluators.llm_serve.metrics import report
from adrs.evaluators.llm_serve.scenarios import bundled, scenario
from adrs.evaluators.llm_serve.simulator import DONE, RUNNING, SWAPPED, Simulation
from adrs.evaluators.llm_serve.workloads import ARXIV, CHAT, Workload, generate, load_trace

ROOT = Path(__file__).resolve().parents[2] / "problems" / "llm-serve"
INITIAL, SARATHI = ROOT / "initial_program.py", ROOT / "sarathi.py"
HEAD = '''
class Scheduler:
    def schedule(self, replica):
        raise NotImplementedError

'''


def program(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "program.py"
    path.write_text(HEAD + body)
    return path


def workload(prompts: list[int], outputs: list[int], gap: float = 0.0) -> Workload:
    n = len(prompts)
    return Workload("t", np.arange(n) * gap, np.array(prompts), np.array(outputs))


def test_cost_model_matches_its_sources() -> None:
    m = MISTRAL_7B_A100
    decode = m.iteration_s(0, 32, 32, 0, 32 * 4096, 0)  # Sarathi-Serve's SLO reference point
    assert 0.020 < decode < 0.030 and 0.1 / decode == pytest.approx(4.05, abs=0.5)
    prefill = m.iteration_s(4096, 0, 1, 4096 * 2048, 0, 0)
    assert 0.28 < prefill < 0.32  # Vidur's 257 ms of Llama-2-7B linear layers, x 1.077
    assert m.iteration_s(0, 1, 1, 0, 100, 0) == pytest.approx(0.0121, abs=1e-3)
    assert blocks_for(16) == 1 and blocks_for(17) == 2


@pytest.mark.parametrize("lengths", [CHAT, ARXIV])
def test_lengths_follow_the_published_medians(lengths: object) -> None:
    prompts, outputs = lengths.draw(np.random.default_rng(0), 40_000)  # type: ignore[attr-defined]
    assert np.median(prompts) == pytest.approx(lengths.prompt_median, rel=0.05)  # type: ignore[attr-defined]
    assert np.median(outputs) == pytest.approx(lengths.output_median, rel=0.05)  # type: ignore[attr-defined]
    assert np.percentile(outputs, 90) == pytest.approx(lengths.output_p90, rel=0.08)  # type: ignore[attr-defined]


def test_scenarios_are_seeded_and_independent() -> None:
    a, b = bundled(), bundled()
    assert all(np.array_equal(x.workload.prompts, y.workload.prompts)
               for x, y in zip(a, b, strict=True))
    prompts = [tuple(s.workload.prompts[:8]) for s in a]
    assert len(set(prompts)) == len(prompts)  # every scenario draws its own requests
    bursty = generate("x", CHAT, 2000, 1.0, True).arrivals
    gaps = np.diff(bursty)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.25)


def test_trace_loader_reads_and_rejects(tmp_path: Path) -> None:
    good = tmp_path / "t.csv"
    good.write_text("arrival_s,prompt_tokens,output_tokens\n1.5,100,20\n0.5,200,10\n")
    w = load_trace(str(good))
    assert w.arrivals.tolist() == [0.0, 1.0] and w.prompts.tolist() == [200, 100]
    cases = {"a,b,c\n1,2,3\n": "the header must be",
             "arrival_s,prompt_tokens,output_tokens\n1,x,3\n": "line 2",
             "arrival_s,prompt_tokens,output_tokens\n1,16000,1000\n": "at most 16384",
             "arrival_s,prompt_tokens,output_tokens\n": "0 requests"}
    for text, words in cases.items():
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(UserError, match=words) as info:
            load_trace(str(bad))
        assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="no such file"):
        load_trace(str(tmp_path / "missing.csv"))
    assert configured({"trace": str(good)})[0].workload.size == 2


def test_one_request_prefill_then_decodes(tmp_path: Path) -> None:
    path = program(tmp_path, '''
class OneChunk(Scheduler):
    def schedule(self, r):
        for q in r.waiting:
            r.prefill(q, q.prefill_left)
''')
    s = scenario("one", "g", "-", workload([40], [3]))
    (out,) = simulate(LocalPort(path), [s], MISTRAL_7B_A100)
    req, times = out.token_times
    assert req.tolist() == [0, 0, 0] and out.done.all() and out.iterations == 3
    m = MISTRAL_7B_A100
    first = m.iteration_s(40, 0, 1, 40 * 20, 0, 0)
    assert times[0] == pytest.approx(first) and out.first_token[0] == pytest.approx(first)
    assert times[1] - times[0] == pytest.approx(m.iteration_s(0, 1, 1, 0, 40, 0))
    assert report(out).goodput == 1.0


def test_broken_rules_make_the_program_invalid(tmp_path: Path) -> None:
    too_big = program(tmp_path, '''
class TooBig(Scheduler):
    def schedule(self, r):
        for q in r.waiting:
            r.prefill(q, q.prefill_left + 1)
''')
    result = run(LocalPort(too_big), [scenario("s", "g", "-", workload([40], [3]))])
    assert result["valid"] is False and "has 40 prompt tokens left" in result["error"]
    twice = program(tmp_path, '''
class Twice(Scheduler):
    def schedule(self, r):
        for q in r.waiting:
            r.prefill(q, 1)
            r.prefill(q, 1)
''')
    result = run(LocalPort(twice), [scenario("s", "g", "-", workload([40], [3]))])
    assert "appears twice" in result["error"]
    small = dataclasses.replace(MISTRAL_7B_A100, gpu_blocks=4)
    greedy = program(tmp_path, '''
class Greedy(Scheduler):
    def schedule(self, r):
        for q in r.waiting:
            r.prefill(q, q.prefill_left)
''')
    with pytest.raises(PolicyError, match="new KV blocks"):
        simulate(LocalPort(greedy), [scenario("s", "g", "-", workload([40, 40], [3, 3]))],
                 small)


def test_a_malformed_reply_is_a_policy_error() -> None:
    for reply in (b"abc", "text", np.array([1, 2], "<u4").tobytes(),
                  np.array([0, 0, 9], "<u4").tobytes()):
        with pytest.raises(PolicyError, match="harness"):
            parse_reply(reply, 1)
    assert parse_reply(np.array([1, 0, 5, 7], "<u4").tobytes(), 1)[0].prefill == ((5, 7),)


@pytest.mark.parametrize("path", [INITIAL, SARATHI])
def test_harness_views_follow_the_simulator_through_preemptions(path: Path) -> None:
    """With a KV cache of 100 blocks both programs preempt; after every step the harness's
    requests agree with the trusted state."""
    model = dataclasses.replace(MISTRAL_7B_A100, gpu_blocks=100)
    rng = np.random.default_rng(1)
    scenarios = [scenario(f"s{i}", "g", "-", Workload(
        f"s{i}", np.sort(rng.uniform(0, 2, 40)), rng.integers(100, 600, 40),
        rng.integers(50, 300, 40))) for i in range(2)]
    sim = Simulation(scenarios, model)
    port = LocalPort(path)
    port.start([{"total_blocks": 100, "swap_blocks": 2048, "block_size": 16,
                 "max_batch_tokens": 16384, "max_seqs": 512, "max_model_len": 16384}] * 2)
    step = 0
    while True:
        asked, message = sim.observe(step)
        if not asked:
            break
        sim.decide(asked, parse_reply(port.step(message), len(asked)))
        for s in asked:
            replica = port.harness._replicas[s]
            for q in replica.running:
                g = int(sim.base[s]) + q.rid
                if sim.state[g] == DONE:  # the harness hears of it at the next step
                    continue
                assert sim.state[g] == RUNNING
                assert (q.computed, q.generated) == (sim.computed[g], sim.generated[g])
        step += 1
    assert sim.preempted.sum() > 0 and (sim.state == DONE).all()


def test_the_reference_beats_the_initial_program() -> None:
    initial = run(LocalPort(INITIAL), configured(None))
    sarathi = run(LocalPort(SARATHI), configured(None))
    assert 40 < initial["score"] < sarathi["score"] < 100
    assert initial["metrics"]["tbt_ok"] < sarathi["metrics"]["tbt_ok"]
    assert "chat/poisson/low" in initial["feedback"] or "Lowest" in initial["feedback"]


SWAP_ONCE = '''
class SwapOnce(Scheduler):
    """Admits every prompt whole; at epoch 4 swaps the oldest decoding request out and at
    epoch 8 brings it back."""

    def __init__(self):
        self.out = None

    def schedule(self, r):
        if r.epoch == 4:
            self.out = next(q for q in r.running if not q.in_prefill)
            r.preempt(self.out, swap=True)
        elif r.epoch == 8:
            r.swap_in(self.out)
        for q in r.waiting:
            r.prefill(q, q.prefill_left)
'''


def test_swap_out_and_in_keeps_blocks_swap_space_and_views_in_step(tmp_path: Path) -> None:
    """A request swapped out keeps its blocks in swap space and stops decoding; swapped in,
    it decodes again from where it was. After every step the harness's views agree with
    the simulator, and the free GPU and swap blocks it shows are the simulator's."""
    model = dataclasses.replace(MISTRAL_7B_A100, gpu_blocks=200, swap_blocks=50)
    sim = Simulation([scenario("swap", "g", "-", workload([100, 60, 30], [40, 40, 40]))],
                     model)
    port = LocalPort(program(tmp_path, SWAP_ONCE))
    port.start([{"total_blocks": 200, "swap_blocks": 50, "block_size": 16,
                 "max_batch_tokens": 16384, "max_seqs": 512, "max_model_len": 16384}])
    replica = port.harness._replicas[0]
    swapped_at: list[tuple[int, int, int]] = []
    step = 0
    while True:
        asked, message = sim.observe(step)
        if not asked:
            break
        reply = port.step(message)
        assert (replica.free_blocks, replica.free_swap_blocks) == (sim.free_gpu[0],
                                                                   sim.free_swap[0])
        sim.decide(asked, parse_reply(reply, 1))
        live = sim.state != DONE
        assert sim.free_gpu[0] == 200 - sim.blocks[live & (sim.state == RUNNING)].sum()
        assert sim.free_swap[0] == 50 - sim.blocks[live & (sim.state == SWAPPED)].sum()
        for q in replica.running + replica.swapped:
            if sim.state[q.rid] == DONE:  # the harness hears of it at the next step
                continue
            assert sim.state[q.rid] == (SWAPPED if q in replica.swapped else RUNNING)
            assert (q.computed, q.generated, q.blocks) == (
                sim.computed[q.rid], sim.generated[q.rid], sim.blocks[q.rid])
        swapped_at += [(q.rid, q.generated, q.blocks) for q in replica.swapped]
        step += 1
    assert len(swapped_at) == 4 and len(set(swapped_at)) == 1  # epochs 4-7, frozen
    rid, generated, blocks = swapped_at[0]
    assert generated > 0 and blocks > 0 and sim.preempted.tolist() == [1, 0, 0]
    assert sim.generated[rid] == 40  # it decoded to its end after the swap-in
    assert (sim.state == DONE).all() and sim.free_swap[0] == 50


def test_output_lengths_never_reach_the_policy(tmp_path: Path) -> None:
    """Two traces that differ only in output lengths send the policies byte-identical
    messages until a request ends, and a request view holds no attribute that could carry
    its output length."""
    path = program(tmp_path, '''
class Whole(Scheduler):
    def schedule(self, r):
        for q in r.waiting:
            r.prefill(q, q.prefill_left)
''')
    prompts = [300, 50, 700, 120]
    short, long = ([20, 25, 30, 35], [900, 400, 600, 800])
    sims = [Simulation([scenario("o", "g", "-", workload(prompts, out, 0.01))],
                       MISTRAL_7B_A100) for out in (short, long)]
    ports = [LocalPort(path), LocalPort(path)]
    for port in ports:
        port.start([{"total_blocks": 26000, "swap_blocks": 2048, "block_size": 16,
                     "max_batch_tokens": 16384, "max_seqs": 512, "max_model_len": 16384}])
    step = 0
    while not (sims[0].state == DONE).any():
        (asked_a, msg_a), (asked_b, msg_b) = sims[0].observe(step), sims[1].observe(step)
        assert asked_a == asked_b and msg_a == msg_b
        for sim, port, asked, msg in zip(sims, ports, (asked_a, asked_b), (msg_a, msg_b),
                                         strict=True):
            sim.decide(asked, parse_reply(port.step(msg), 1))
        step += 1
    assert step >= 20  # the first request ended after its 20 tokens
    request = ports[0].harness._replicas[0].running[0]
    public = {n for n in dir(request) if not n.startswith("__")}
    assert public == {"_comp", "_fold", "_gen", "_live", "_mark", "_replica", "arrival",
                      "blocks", "computed", "generated", "in_prefill", "preemptions",
                      "prefill_left", "prompt_tokens", "rid", "target"}
    assert not hasattr(request, "__dict__")  # __slots__: nothing can be attached
