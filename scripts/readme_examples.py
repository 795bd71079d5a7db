#!/usr/bin/env python3
"""Runs README.md's ```console examples against the real permd and compares.

    python3 scripts/readme_examples.py           # check; exit 1 and a diff on drift
    python3 scripts/readme_examples.py --fix     # rewrite the outputs that drifted
    python3 scripts/readme_examples.py --list    # which blocks are checked, which skipped

A ```console block is a transcript: `$ ` lines are commands (a trailing `\\`
continues one onto the next line), the lines after each are what it prints.
Every console block is checked unless the line right before its fence says

    <!-- readme-examples: skip (why it cannot run here) -->

so a new example is checked by default and an unchecked one says why. A
checked block's commands must start with `cargo run --release -- ` or
`permd ` (optionally after `NAME=value` assignments); `cargo run --release --`
is replaced by the binary under test and `permd` on the PATH is that binary.

The commands run one by one with bash, from the repository root, with
NO_COLOR=1, no inherited PERMD_*, RUST_LOG or OTEL_* variables, and
PERMD_ADDR pointing at a `permd serve` this script starts on free loopback
ports (the built-in demo tenant). A block may ask for a server of its own
settings instead:

    <!-- readme-examples: serve --data examples/data/small.yaml -->

(started once per distinct argument list, shared in README order by the
blocks naming the same one). What a command writes to stdout and stderr,
merged as a terminal shows them, is compared with the block's output lines:

* `…` within a line matches any text (`round trip …`);
* a line that is only `…` matches any number of lines, none included;
* trailing whitespace and trailing blank lines are ignored.

The exit status is not compared (a README may show a failing command); it
is reported with a mismatch. Binary: --bin, else PERMD_BIN, else
$CARGO_TARGET_DIR/debug/permd, else ~/.cache/permd-target/debug/permd.

--fix rewrites only the output lines of the blocks that differ, keeping each
README line that still matches (its `…` included). It runs every block a
second time on fresh servers and writes `…` for what differs between the two
runs within a line (timings); it leaves alone, and reports, a block whose
command failed or timed out (maybe a binary without that command) or whose
output changes between runs in a way `…` cannot cover. Blocks are found
again in README.md as it is when written, so edits made meanwhile to other
sections are kept.

Exit status: 0 every checked block matches (or --fix rewrote them all),
1 a block differs, 2 the set-up failed (no binary, the server did not start
or died, a console block that is neither checkable nor marked).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import dataclasses
import difflib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ELLIPSIS = "…"
LABEL = "README.md"  # how messages name the README (--readme changes it)
DIRECTIVE = re.compile(r"^\s*<!--\s*readme-examples:\s*(.*?)\s*-->\s*$")
# A directive line not right before a fence: a mistake (matched only on
# lines that are not the one before a fence; inline mentions are fine).
ANY_DIRECTIVE = re.compile(r"^\s*<!--\s*readme-examples?\b")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
# `$ [NAME=value ...] permd ...` or `$ [NAME=value ...] cargo run --release -- ...`
ASSIGNMENT = r"""[A-Za-z_][A-Za-z0-9_]*=(?:'[^']*'|"[^"]*"|[^\s'"])*\s+"""
CHECKABLE = re.compile(rf"^(?:{ASSIGNMENT})*(?:cargo run --release -- |permd(?:\s|$))")
CARGO_RUN = re.compile(r"\bcargo run --release --(?=\s|$)")
# Variables of the developer's shell that would change what permd does.
SCRUBBED_ENV = re.compile(r"^(PERMD_|OTEL_|RUST_LOG$|RUST_BACKTRACE$)")


class SetupError(Exception):
    """Something other than drift: exit status 2."""


# --- the README ------------------------------------------------------------


@dataclasses.dataclass
class Command:
    text: str  # as written, continuation lines included, without `$ `
    line: int  # README line number of its `$ ` line
    output: list[str]  # the lines the README shows after it (rstripped)
    output_line: int  # README line number of the first output line


@dataclasses.dataclass
class Block:
    fence_line: int  # README line number of the opening ``` line
    lines: list[str]  # the lines between the fences, as written
    commands: list[Command]
    skip: str | None = None  # reason, when marked skip
    serve_args: tuple[str, ...] = ()

    @property
    def first_content_line(self) -> int:
        return self.fence_line + 1

    def summary(self) -> str:
        if not self.commands:
            return "(no command)"
        first = self.commands[0].text.split("\n", 1)[0].rstrip(" \\")
        more = f" (+{len(self.commands) - 1} more)" if len(self.commands) > 1 else ""
        return first + more


def parse_readme(text: str) -> list[Block]:
    """Every ```console block, with the directive right before it, if any.
    Other fenced blocks are stepped over whole (a fence inside one is text)."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            before_fence = i + 1 < len(lines) and FENCE.match(lines[i + 1])
            if ANY_DIRECTIVE.match(lines[i]) and not before_fence:
                raise SetupError(
                    f"{LABEL}:{i + 1}: a readme-examples directive must be the line right "
                    "before a ```console fence"
                )
            i += 1
            continue
        marker, info = fence.group(1), fence.group(2)
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}\s*$")
        start = i
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            i += 1
        if i >= len(lines):
            raise SetupError(f"{LABEL}:{start + 1}: fenced block is never closed")
        i += 1
        directive = DIRECTIVE.match(lines[start - 1]) if start > 0 else None
        if start > 0 and not directive and ANY_DIRECTIVE.match(lines[start - 1]):
            raise SetupError(
                f"{LABEL}:{start}: malformed directive; write "
                "`<!-- readme-examples: skip (why) -->` or `<!-- readme-examples: serve ARGS -->`"
            )
        if info != "console":
            if directive:
                raise SetupError(
                    f"{LABEL}:{start}: a readme-examples directive before a ```{info} block "
                    "(only ```console blocks are run)"
                )
            continue
        block = Block(
            fence_line=start + 1,
            lines=lines[start + 1 : i - 1],
            commands=parse_transcript(lines[start + 1 : i - 1], start + 2),
        )
        if directive:
            apply_directive(block, directive.group(1), start)
        blocks.append(block)
    return blocks


def apply_directive(block: Block, directive: str, index: int) -> None:
    where = f"{LABEL}:{index}"
    if m := re.fullmatch(r"skip\s*\((.+)\)", directive):
        block.skip = m.group(1).strip()
    elif m := re.fullmatch(r"serve(?:\s+(.*))?", directive):
        args = tuple(shlex.split(m.group(1) or ""))
        for a in args:
            if a.split("=", 1)[0] in ("--listen", "--metrics-listen"):
                raise SetupError(f"{where}: `serve` directive: {a} is chosen by this script")
        block.serve_args = args
    else:
        raise SetupError(
            f"{where}: unknown readme-examples directive {directive!r} "
            "(`skip (why)` or `serve ARGS`)"
        )


def parse_transcript(lines: list[str], first_line: int) -> list[Command]:
    """`$ ` commands (continued by a trailing backslash) and their outputs."""
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if not commands:
                if lines[i].strip():
                    raise SetupError(
                        f"{LABEL}:{first_line + i}: console block output before any `$ ` command"
                    )
            else:
                commands[-1].output.append(lines[i].rstrip())
            i += 1
            continue
        start = i
        parts = [lines[i][2:]]
        while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        i += 1
        commands.append(Command("\n".join(parts), first_line + start, [], first_line + i))
    for c in commands:
        while c.output and not c.output[-1]:
            c.output.pop()
    return commands


# --- matching --------------------------------------------------------------


def is_gap(line: str) -> bool:
    return line.strip() == ELLIPSIS


_patterns: dict[str, re.Pattern[str]] = {}


def line_matches(expected: str, actual: str) -> bool:
    if ELLIPSIS not in expected:
        return expected == actual
    pattern = _patterns.get(expected)
    if pattern is None:
        pattern = re.compile(".*?".join(map(re.escape, expected.split(ELLIPSIS))), re.S)
        _patterns[expected] = pattern
    return pattern.fullmatch(actual) is not None


def merge(expected: list[str], actual: list[str]) -> list[str]:
    """The README's output made true: its lines where they still match
    (wildcards kept), the real lines elsewhere. Equal to `expected` exactly
    when the output matches.

    An alignment that maximises the lines matched, then the lines a gap
    (`…` alone) absorbs rather than leaves as new; gap lines are always kept."""
    n, m = len(expected), len(actual)
    hit = m + 1  # one matched line outweighs any number of absorbed ones
    if n * m > 4_000_000:  # too long to align: regex match or real text
        return expected if whole_match(expected, actual) else list(actual)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = best[i], best[i + 1]
        gap = is_gap(expected[i])
        for j in range(m - 1, -1, -1):
            if gap:
                row[j] = max(below[j], 1 + row[j + 1])
            else:
                score = max(below[j], row[j + 1])
                if line_matches(expected[i], actual[j]):
                    score = max(score, hit + below[j + 1])
                row[j] = score
    out: list[str] = []
    i = j = 0
    while i < n or j < m:
        if i == n:
            out.append(actual[j])
            j += 1
        elif j == m:
            if is_gap(expected[i]):
                out.append(expected[i])
            i += 1
        elif is_gap(expected[i]):
            if 1 + best[i][j + 1] >= best[i + 1][j]:
                j += 1  # absorbed; the gap line is written once, when left
            else:
                out.append(expected[i])
                i += 1
        elif line_matches(expected[i], actual[j]) and best[i][j] == hit + best[i + 1][j + 1]:
            out.append(expected[i])
            i += 1
            j += 1
        elif best[i][j] == best[i + 1][j]:
            i += 1  # the README's line is gone
        else:
            out.append(actual[j])
            j += 1
    return out


def whole_match(expected: list[str], actual: list[str]) -> bool:
    parts = []
    for line in expected:
        if is_gap(line):
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(p) for p in line.split(ELLIPSIS)) + r"\n")
    text = "".join(a + "\n" for a in actual)
    return re.fullmatch("".join(parts), text) is not None


# --- running permd ---------------------------------------------------------


def find_binary(explicit: str | None) -> Path:
    if explicit:
        source, path = "--bin", explicit
    elif os.environ.get("PERMD_BIN"):
        source, path = "PERMD_BIN", os.environ["PERMD_BIN"]
    elif os.environ.get("CARGO_TARGET_DIR"):
        source = "$CARGO_TARGET_DIR/debug/permd"
        path = f"{os.environ['CARGO_TARGET_DIR']}/debug/permd"
    else:
        source, path = "the default", str(Path.home() / ".cache/permd-target/debug/permd")
    binary = Path(path).expanduser().absolute()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise SetupError(
            f"no permd binary at {binary} ({source}); build it (cargo build, as "
            ".ci/run's cargo test does) or name one with PERMD_BIN=PATH"
        )
    newest = max(
        (p.stat().st_mtime for d in ("src", "proto") for p in (REPO / d).rglob("*") if p.is_file()),
        default=0.0,
    )
    if binary.stat().st_mtime < newest:
        print(
            f"readme-examples: warning: {binary} is older than src/ or proto/; rebuild it "
            "for a verdict on this checkout",
            file=sys.stderr,
        )
    return binary.resolve()


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SCRUBBED_ENV.match(k)}
    env.update(NO_COLOR="1", TERM="dumb")
    env.pop("CLICOLOR_FORCE", None)
    env.pop("FORCE_COLOR", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:
    """In the child: SIGTERM when this script dies, even by SIGKILL (Linux);
    elsewhere the atexit handler and the finally blocks are all there is."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


class Server:
    def __init__(self, args: tuple[str, ...], log_path: Path):
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_path
        self.port = 0

    def start(self, binary: Path, wait_s: float) -> None:
        """Starts it on free ports; returns once it accepts connections."""
        for attempt in range(3):
            self.port, metrics = free_port(), free_port()
            argv = [
                str(binary), "serve",
                "--listen", f"127.0.0.1:{self.port}",
                "--metrics-listen", f"127.0.0.1:{metrics}",
                *self.args,
            ]  # fmt: skip
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    argv,
                    cwd=REPO,
                    env=clean_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            if self.wait_ready(wait_s):
                return
            status = self.proc.returncode
            self.stop()
            log_text = self.log()
            if status is not None and "cannot listen" in log_text and attempt < 2:
                continue  # a port taken between free_port() and bind: try others
            raise SetupError(
                f"`{shlex.join(['permd', *argv[1:]])}` "
                + (
                    f"exited with status {status}"
                    if status is not None
                    else f"accepted no connection within {wait_s:g} s (stopped)"
                )
                + f"; its log:\n{log_text.rstrip() or '(empty)'}"
            )

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, wait_s: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        tail = text.splitlines()[-40:]
        return "\n".join(tail)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: permd drains and exits 0
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Servers:
    """One `permd serve` per distinct argument list, started when first
    needed, all stopped at exit whatever the exit."""

    def __init__(self, binary: Path, workdir: Path, wait_s: float):
        self.binary, self.workdir, self.wait_s = binary, workdir, wait_s
        self.running: dict[tuple[str, ...], Server] = {}
        atexit.register(self.stop_all)

    def get(self, args: tuple[str, ...]) -> Server:
        server = self.running.get(args)
        if server is None:
            server = Server(args, self.workdir / f"serve-{len(self.running)}.log")
            self.running[args] = server  # before it starts: stopped whatever happens
            server.start(self.binary, self.wait_s)
        elif not server.alive():
            raise SetupError(
                f"`permd serve {shlex.join(args)}` died during the run "
                f"(status {server.proc.returncode if server.proc else '?'}); "
                f"its log:\n{server.log()}"
            )
        return server

    def stop_all(self) -> None:
        for server in self.running.values():
            server.stop()


@dataclasses.dataclass
class Result:
    command: Command
    output: list[str]
    status: int | None  # None: timed out


def run_command(command: Command, server: Server, shim: Path, timeout: float) -> Result:
    env = clean_env()
    env["PERMD_ADDR"] = server.addr
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    script = CARGO_RUN.sub("permd", command.text)
    proc = subprocess.Popen(
        ["bash", "-o", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        status = None
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind
        except ProcessLookupError:
            pass
    lines = [line.rstrip() for line in out.decode("utf-8", errors="replace").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return Result(command, lines, status)


# --- reporting and fixing ----------------------------------------------------


def fixed_block_lines(
    block: Block, results: list[Result], again: list[Result] | None = None
) -> tuple[list[str], list[str]]:
    """The block's lines with each command's output made true, and the
    commands whose output could not be pinned down. With a second run
    (`again`, from fresh servers), what differs between the two runs
    within a line becomes `…`."""
    out: list[str] = []
    unstable: list[str] = []
    cursor = 0
    for k, r in enumerate(results):
        c = r.command
        out_start = c.output_line - block.first_content_line
        out.extend(block.lines[cursor:out_start])  # up to and with the command
        written = block.lines[out_start : out_start + len(c.output)]
        actual = r.output
        if again is not None:
            actual = wildcard_lines(r.output, again[k].output)
        merged = merge(c.output, actual)
        if again is not None and not (
            whole_match(merged, r.output) and whole_match(merged, again[k].output)
        ):
            unstable.append(c.text.split("\n", 1)[0])
        out.extend(written if merged == c.output else merged)
        cursor = out_start + len(c.output)
    out.extend(block.lines[cursor:])  # trailing blank lines, if any
    return out, unstable


WORDISH = re.compile(r"[\w.:-]")


def wildcard_lines(first: list[str], second: list[str]) -> list[str]:
    """`first`, with the part of each line that differs in `second` as `…`
    (widened to whole words: `round trip 0.81 ms` and `0.92 ms` give
    `round trip … ms`). Runs of different lengths are left alone."""
    if len(first) != len(second):
        return first
    out = []
    for a, b in zip(first, second):
        if a == b:
            out.append(a)
            continue
        p = len(os.path.commonprefix([a, b]))
        q = len(os.path.commonprefix([a[p:][::-1], b[p:][::-1]]))
        while p > 0 and WORDISH.match(a[p - 1]):
            p -= 1
        while q > 0 and WORDISH.match(a[len(a) - q]):
            q -= 1
        out.append(a[:p] + ELLIPSIS + a[len(a) - q :])
    return out


def block_diff(block: Block, new: list[str]) -> str:
    offset = block.first_content_line - 1
    lines = []
    for line in difflib.unified_diff(
        block.lines, new, f"{LABEL} (as written)", f"{LABEL} (as permd prints it)", lineterm=""
    ):
        if m := re.match(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", line):
            line = (
                f"@@ -{int(m.group(1)) + offset}{m.group(2) or ''} "
                f"+{int(m.group(3)) + offset}{m.group(4) or ''} @@"
            )
        lines.append(line)
    return "\n".join(lines)


def write_fixes(readme: Path, fixes: list[tuple[Block, list[str]]]) -> list[str]:
    """Replaces each fixed block in README.md as it is *now* (others may have
    edited other sections meanwhile), found by its exact old text."""
    text = original = readme.read_text()
    problems = []
    for block, new in fixes:
        old = "\n" + "\n".join(block.lines) + "\n"
        count = text.count(old)
        if count != 1:
            problems.append(
                f"{LABEL}:{block.fence_line}: block "
                + ("changed while this ran" if count == 0 else "appears more than once")
                + "; not rewritten"
            )
            continue
        text = text.replace(old, "\n" + "\n".join(new) + "\n")
    if text == original:
        return problems
    tmp = readme.with_name(f".{readme.name}.readme-examples.tmp")
    tmp.write_text(text)
    os.chmod(tmp, readme.stat().st_mode & 0o7777)
    os.replace(tmp, readme)
    return problems


# --- main --------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Check README.md's console examples against the real permd.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    add = parser.add_argument
    add("--fix", action="store_true", help="rewrite the outputs that differ, in place")
    add("--list", action="store_true", help="list the console blocks and exit")
    add("--readme", default=str(REPO / "README.md"), help="default: the repo's README.md")
    add("--bin", help="permd binary (default: PERMD_BIN, see above)")
    add("--timeout", type=float, default=120, help="seconds per command (120)")
    add("--server-wait", type=float, default=60, help="seconds for serve to listen (60)")
    opts = parser.parse_args()

    readme = Path(opts.readme)
    global LABEL
    resolved = readme.resolve()
    LABEL = str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(readme)
    blocks = parse_readme(readme.read_text())
    unmarked = [
        f"{LABEL}:{b.fence_line}: `$ {c.text.splitlines()[0]}` is not a permd command"
        for b in blocks
        if b.skip is None
        for c in b.commands
        if not CHECKABLE.match(c.text)
    ] + [
        f"{LABEL}:{b.fence_line}: console block has no `$ ` command"
        for b in blocks
        if b.skip is None and not b.commands
    ]
    if opts.list:
        for b in blocks:
            state = f"skip ({b.skip})" if b.skip is not None else "check"
            extra = f" [serve {shlex.join(b.serve_args)}]" if b.serve_args else ""
            print(f"{LABEL}:{b.fence_line}: {state}{extra}: {b.summary()}")
    if unmarked:
        raise SetupError(
            "\n".join(unmarked)
            + "\nmark such a block `<!-- readme-examples: skip (why) -->` "
            "on the line before its fence"
        )
    if opts.list:
        return 0

    binary = find_binary(opts.bin)
    checked = [b for b in blocks if b.skip is None]
    skipped = len(blocks) - len(checked)
    counts = f"{len(checked)} blocks checked, {skipped} skipped"
    first = run_all(checked, binary, opts)
    differing = [
        (block, results)
        for block, results in zip(checked, first)
        if fixed_block_lines(block, results)[0] != block.lines
    ]
    if not differing:
        print(f"readme-examples: {counts}: all match")
        return 0
    # --fix runs everything again on fresh servers: what varies between the
    # two runs (timings) is written as `…`, what varies otherwise is refused.
    again = dict(zip(map(id, checked), run_all(checked, binary, opts))) if opts.fix else {}
    fixable: list[tuple[Block, list[str]]] = []
    problems: list[str] = []
    for block, results in differing:
        new, unstable = fixed_block_lines(block, results, again.get(id(block)))
        statuses = ", ".join(
            f"timed out after {opts.timeout:g} s" if r.status is None else f"exit status {r.status}"
            for r in results
        )
        print(f"{LABEL}:{block.fence_line}: console block differs ({statuses}): {block.summary()}")
        print(block_diff(block, new))
        print()
        if not opts.fix:
            continue
        if not all(r.status == 0 for r in results):
            # Perhaps a binary without that command: its error message is
            # not what the README should say. (A README may show a failing
            # command on purpose; such a block is fixed by hand.)
            problems.append(
                f"{LABEL}:{block.fence_line}: not rewritten: a command failed or timed out"
            )
        elif unstable:
            problems.append(
                f"{LABEL}:{block.fence_line}: not rewritten: the output of `{unstable[0]}` "
                "changes between runs beyond what `…` in a line can cover"
            )
        else:
            fixable.append((block, new))
    if not opts.fix:
        print(
            f"readme-examples: {counts}: {len(differing)} differ; "
            "`python3 scripts/readme_examples.py --fix` rewrites them"
        )
        return 1
    if fixable:
        problems += write_fixes(readme, fixable)
    for p in problems:
        print(f"readme-examples: {p}", file=sys.stderr)
    print(
        f"readme-examples: {counts}: rewrote {len(differing) - len(problems)} of "
        f"{len(differing)} that differed, in {readme}"
    )
    return 1 if problems else 0


def run_all(blocks: list[Block], binary: Path, opts: argparse.Namespace) -> list[list[Result]]:
    """Every block's commands, in README order, against servers started
    for this run and stopped at its end (or at exit, whatever the exit)."""
    with tempfile.TemporaryDirectory(prefix="readme-examples-") as tmp:
        work = Path(tmp)
        shim = work / "bin"
        shim.mkdir()
        (shim / "permd").symlink_to(binary)
        servers = Servers(binary, work, opts.server_wait)
        try:
            results = []
            for block in blocks:
                server = servers.get(block.serve_args)
                results.append(
                    [run_command(c, server, shim, opts.timeout) for c in block.commands]
                )
            for args in list(servers.running):
                servers.get(args)  # fails if that server died while the commands ran
            return results
        finally:
            servers.stop_all()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the finally blocks and atexit: servers stop


if __name__ == "__main__":
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        sys.exit(main())
    except SetupError as e:
        print(f"readme-examples: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
