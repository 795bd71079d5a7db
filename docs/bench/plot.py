#!/usr/bin/env python3
"""Plots BatchCheck latency against batch size for permd and its peers, as
an SVG with no dependencies beyond Python itself.

    python3 docs/bench/plot.py \
        --criterion "$CARGO_TARGET_DIR/criterion" \
        --peers docs/bench/peers.json \
        --out docs/latency-vs-batch.svg

permd's lines come from criterion's medians (`cargo bench --bench
batch_check`, in-process, bulk_send_email by u0); the peers' from
`PERMD_PEERS_JSON=docs/bench/peers.json cargo bench --features peers --bench
peers` (median ns per record × batch, same principal and action).
"""

import argparse
import json
import math
import pathlib
import sys

ACTION = "bulk_send_email"
PRINCIPAL = "u0"
COLORS = {
    "permd, packed ids": "#1b7837",
    "permd, string ids": "#5aae61",
    "permd, beside the peers": "#a6dba0",
    "Cedar": "#2166ac",
    "casbin": "#b2182b",
}


def criterion_series(root: pathlib.Path, ids: str) -> list[tuple[int, float]]:
    """(batch, median µs) from criterion's estimates."""
    base = root / f"batch_check_warm_{ACTION}" / ids
    points = []
    for d in sorted(base.glob("*")) if base.exists() else []:
        est = d / "new" / "estimates.json"
        if d.name.isdigit() and est.exists():
            median_ns = json.loads(est.read_text())["median"]["point_estimate"]
            points.append((int(d.name), median_ns / 1e3))
    return sorted(points)


def peer_series(peers: dict, key: str) -> list[tuple[int, float]]:
    return sorted(
        (row["batch"], row[key] * row["batch"] / 1e3)
        for row in peers.get("rows", [])
        if row["principal"] == PRINCIPAL and row["action"] == ACTION
    )


def svg(series: dict[str, list[tuple[int, float]]], title: str) -> str:
    width, height, left, right, top, bottom = 820, 480, 80, 250, 50, 60
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    if not xs:
        sys.exit("nothing to plot: no criterion results and no peers JSON")
    x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)

    def px(x: float) -> float:
        return left + (math.log10(x) - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (math.log10(y) - y0) / (y1 - y0) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2 - 60}" y="24" font-size="15" text-anchor="middle">{title}</text>',
    ]
    for e in range(x0, x1 + 1):
        x = px(10**e)
        out.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{height - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x}" y="{height - bottom + 18}" text-anchor="middle">{10**e:,}</text>')
    for e in range(y0, y1 + 1):
        y = py(10**e)
        label = f"{10**e:g} µs" if e < 3 else f"{10**(e - 3):g} ms" if e < 6 else f"{10**(e - 6):g} s"
        out.append(f'<line x1="{left}" y1="{y}" x2="{width - right}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{label}</text>')
    out.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 18}" text-anchor="middle">'
        "records per BatchCheck</text>"
    )
    out.append(
        f'<text x="20" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 20 {(top + height - bottom) / 2})">median latency per batch</text>'
    )
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        color = COLORS.get(name, "#555")
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"/>')
        ly = top + 20 + i * 22
        out.append(f'<line x1="{width - right + 15}" y1="{ly}" x2="{width - right + 40}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2.5"/>')
        out.append(f'<text x="{width - right + 46}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--criterion", type=pathlib.Path, required=True)
    ap.add_argument("--peers", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args()
    peers = json.loads(args.peers.read_text()) if args.peers and args.peers.exists() else {}
    series = {
        "permd, packed ids": criterion_series(args.criterion, "packed"),
        "permd, string ids": criterion_series(args.criterion, "strings"),
        "permd, beside the peers": peer_series(peers, "permd_ns"),
        "Cedar": peer_series(peers, "cedar_ns"),
        "casbin": peer_series(peers, "casbin_ns"),
    }
    title = f"BatchCheck {ACTION} by {PRINCIPAL}, in-process (log-log)"
    args.out.write_text(svg(series, title))
    for name, pts in series.items():
        print(name, ", ".join(f"{x}: {y:.1f} µs" for x, y in pts))


if __name__ == "__main__":
    main()
