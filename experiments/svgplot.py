"""Small SVG line charts for experiment reports (no dependencies): linear or log y."""
import math

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _fmt(v):
    a = abs(v)
    if v == 0:
        return "0"
    if a >= 1e4 or a < 1e-2:
        return f"{v:.0e}"
    return f"{v:.0f}" if a >= 100 else f"{v:.3g}"


def chart(series, title, xlabel, ylabel, path, log_y=False, hline=None, width=680, height=380):
    """series: {name: [(x, y), ...]} (or {name: {"pts": [...], "dash": True}}). Writes an SVG file."""
    norm = {}
    for k, v in series.items():
        pts = v["pts"] if isinstance(v, dict) else v
        pts = [(x, y) for x, y in pts if y is not None and math.isfinite(y) and (not log_y or y > 0)]
        norm[k] = (pts, isinstance(v, dict) and v.get("dash", False))
    xs = [x for p, _ in norm.values() for x, _ in p]
    ys = [y for p, _ in norm.values() for _, y in p] + ([hline] if hline else [])
    legend_w = max(170, 40 + 7 * max((len(k) for k in norm), default=0))  # room for the longest label
    width += legend_w - 170
    L, R, T, B = 64, width - legend_w, 34, height - 44
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="{(L + R) / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    if not xs:
        open(path, "w").write("\n".join(s + ["</svg>"]))
        return
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    if log_y:
        y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        y1 = y1 if y1 > y0 else y0 + 1
        fy = lambda y: B - (math.log10(y) - y0) / (y1 - y0) * (B - T)
        step = max(1, math.ceil((y1 - y0) / 6))
        ticks = [10.0 ** e for e in range(y0, y1 + 1, step)]
    else:
        y0, y1 = min(ys), max(ys)
        y1 = y1 if y1 > y0 else y0 + 1
        y0, y1 = y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0)
        fy = lambda y: B - (y - y0) / (y1 - y0) * (B - T)
        ticks = [y0 + (y1 - y0) * i / 5 for i in range(6)]
    fx = lambda x: L + (x - x0) / (x1 - x0) * (R - L)
    s.append(f'<rect x="{L}" y="{T}" width="{R - L}" height="{B - T}" fill="none" stroke="#999"/>')
    for t in ticks:
        s.append(f'<line x1="{L}" x2="{R}" y1="{fy(t):.1f}" y2="{fy(t):.1f}" stroke="#eee"/>'
                 f'<text x="{L - 5}" y="{fy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for i in range(6):
        xv = x0 + (x1 - x0) * i / 5
        s.append(f'<text x="{fx(xv):.1f}" y="{B + 16}" text-anchor="middle">{_fmt(xv)}</text>')
    s.append(f'<text x="{(L + R) / 2}" y="{height - 8}" text-anchor="middle">{xlabel}</text>')
    s.append(f'<text x="16" y="{(T + B) / 2}" transform="rotate(-90 16 {(T + B) / 2})" text-anchor="middle">{ylabel}</text>')
    if hline:
        s.append(f'<line x1="{L}" x2="{R}" y1="{fy(hline):.1f}" y2="{fy(hline):.1f}" stroke="#555" stroke-dasharray="3,3"/>')
    for i, (name, (pts, dash)) in enumerate(norm.items()):
        c = COLORS[i % len(COLORS)]
        da = ' stroke-dasharray="6,3"' if dash else ""
        d = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in pts)
        s.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6"{da} points="{d}"/>')
        s.append(f'<line x1="{R + 8}" x2="{R + 28}" y1="{T + 10 + 17 * i}" y2="{T + 10 + 17 * i}" stroke="{c}" stroke-width="2"{da}/>'
                 f'<text x="{R + 32}" y="{T + 14 + 17 * i}">{name}</text>')
    s.append("</svg>")
    open(path, "w").write("\n".join(s))
