"""Every rule's log, benchmark, resources and failure hook come from the helpers
of common.smk (stage_log, stage_benchmark, stage_resources, stage_shell): written
once there, never per rule. Read from the rule files, no Snakemake run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "workflow" / "rules"
COMMON = RULES / "common.smk"
RULE_FILES = sorted(p for p in RULES.glob("*.smk") if p != COMMON)


def _helpers() -> dict:
    """common.smk's "rule boilerplate" section (plain Python), run on its own."""
    text = COMMON.read_text()
    start = text.index("# " + "-" * 64 + " rule boilerplate")
    end = text.index("\nwildcard_constraints:", start)
    ns: dict = {"LOGS": "OUT/logs", "BENCH": "OUT/benchmarks"}
    exec(compile(text[start:end], str(COMMON), "exec"), ns)
    return ns


def _rules() -> dict[str, str]:
    """{rule name: its text} of every rule and checkpoint, the rtc_batch_N rule
    written in a loop (indented, its name under name:) included."""
    out = {}
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^( *)(?:rule|checkpoint)( \w+)?:$", line)
            if not m:
                continue
            indent = len(m.group(1))
            body = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt)
            text = "\n".join(body)
            name = m.group(2).strip() if m.group(2) else re.search(r'name:\s+f?"(\w+)', text)[1]
            out[name] = text
    return out


def test_every_rule_takes_its_boilerplate_from_the_helpers():
    rules = {name: text for name, text in _rules().items() if "shell:" in text}
    assert len(rules) >= 25 and "rtc_batch_" in rules, sorted(rules)
    for name, text in rules.items():
        log = re.search(r'log:\n(?:.*\n)*?\s+(?:"batch": )?stage_log\(f?"([^"]+)"\)', text)
        bench = re.search(r'benchmark:\n\s+stage_benchmark\(f?"([^"]+)"\)', text)
        res = re.search(r'resources:\n\s+\*\*stage_resources\("(\w+)"', text)
        assert log and bench and res and "stage_shell(" in text, name
        assert log[1] == bench[1], f"{name}: log {log[1]!r}, benchmark {bench[1]!r}"
        assert res[1] == name.rstrip("_"), f"{name}: resources of {res[1]!r}"
    for path in RULE_FILES:
        text = path.read_text()
        for written in ("sarstack_fail", "2> {", "mem_mb", "runtime=", "{LOGS}", "{BENCH}"):
            assert written not in text, f"{path.name}: {written!r} written in a rule"


def test_resource_table_has_every_rule_once():
    helpers = _helpers()
    table = helpers["STAGE_RESOURCES"]
    used = {re.search(r'stage_resources\("(\w+)"', t)[1] for t in _rules().values()
            if "stage_resources(" in t}  # fmt: skip
    assert set(table) == used, set(table) ^ used
    # each memory size written once (the table is grouped by memory)
    sizes = re.findall(r"^\s+mem_mb=(\d+),$", COMMON.read_text(), re.M)
    assert len(sizes) == len(set(sizes)) == len({r["mem_mb"] for r in table.values()})
    for stage, res in table.items():
        assert set(res) == {"mem_mb", "runtime"} and res["mem_mb"] >= 500, stage
    stage_resources = helpers["stage_resources"]
    assert stage_resources("insar_invert") == {"mem_mb": 2000, "runtime": 60}
    assert stage_resources("rtc_batch", stacks=3) == {"mem_mb": 500, "runtime": 40}


def test_helpers_write_the_commands_and_paths_as_before():
    """The hook's text is each rule's code for Snakemake's rerun trigger: the
    strings the rules wrote out before the helpers, character for character."""
    h = _helpers()
    assert h["stage_log"]("rtc/{stack}flatten_{chunk}") == "OUT/logs/rtc/{stack}flatten_{chunk}.log"
    assert h["stage_benchmark"]("insar/select") == "OUT/benchmarks/insar/select.tsv"
    cmd = "python -m sarstack insar_select {params.opts} --out {output:q}"
    assert h["stage_shell"](cmd) == cmd + " 2> {log:q} || sarstack_fail {log:q}"
    assert h["stage_shell"]("python -m sarstack rtc_select", warnings_from="{log:q}") == (
        "python -m sarstack rtc_select 2> {log:q} || sarstack_fail {log:q};"
        " grep -h ' WARNING ' {log:q} >&2 || true"
    )
    batch = h["stage_shell"](
        "python -m sarstack {params.cmd}", log="log.batch", warnings_from="{params.select_logs:q}"
    )
    assert batch == (
        "python -m sarstack {params.cmd} 2> {log.batch:q} || sarstack_fail {log.batch:q};"
        " grep -h ' WARNING ' {params.select_logs:q} >&2 || true"
    )


def _common_function(name: str):
    """One top-level function of common.smk, run on its own."""
    text = COMMON.read_text()
    start = text.index(f"\ndef {name}(")
    end = text.index("\n\n\n", start + 1)
    ns: dict = {}
    exec(compile(text[start:end], str(COMMON), "exec"), ns)
    return ns[name]


def test_run_end_cancels_snakemakes_pending_scheduler_timer():
    """onsuccess/onerror cancel the scheduler's last 1 s wake-up timer (a
    non-daemon thread Python waited for at exit); other timers are left alone."""
    import threading

    stop = _common_function("stop_scheduler_wakeups")

    def wake() -> None:
        pass

    wake.__module__ = "snakemake.scheduling.job_scheduler"
    sched, other = threading.Timer(60, wake), threading.Timer(60, lambda: None)
    sched.start()
    other.start()
    try:
        stop()
        sched.join(timeout=5)
        assert not sched.is_alive()
        assert other.is_alive()
    finally:
        sched.cancel()
        other.cancel()


#: ``{params.NAME}`` that rule commands may use without ``:q``: option bundles
#: and chains the workflow builds itself (their paths already quoted inside by
#: format_command's ``:q``), a chunk label and a bare flag. Every path, glob or
#: list of them is quoted by Snakemake: ``{params.NAME:q}``.
UNQUOTED_PARAMS = {"chunk", "cmd", "inject", "injection", "terrain", "absolute"}


def test_rule_commands_quote_every_path_param():
    found = set()
    for smk in [ROOT / "Snakefile", *sorted(RULES.glob("*.smk"))]:
        for name in re.findall(r"\{params\.(\w+)\}", smk.read_text()):
            if not name.startswith("opts") and name not in UNQUOTED_PARAMS:
                found.add(f"{smk.name}: {{params.{name}}}")
    assert not found, f"unquoted params in rule commands (use :q): {sorted(found)}"
