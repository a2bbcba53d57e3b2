"""The explorer's web app: Dash pages over an :class:`~analysis.explore.session.Explorer`.

The only module that imports the web libraries (Dash, its AG Grid, Plotly, Flask and
Werkzeug, all from the ``explore`` extra). Every script and style is served by Dash from the
installed packages (``serve_locally=True``); images are ``data:`` URIs. The server listens
on 127.0.0.1 only and refuses every request that carries neither the session's random token
(``?token=``, as printed) nor the cookie set by the first request that did.

Routes: ``/`` the explorer, which opens a unit's view from a unit link
(:data:`analysis.explore.UNIT_URL`: ``/?model=dataset/model/seed&unit=layer:unit``);
:data:`analysis.explore.REPORT_PATH` (``/report/``) the report folder written by
``python -m analysis RESULTS --out DIR``, when there is one, whose sections the explorer's
header and unit view link to (``/report/index.html#s<N>``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import socket
import time
from typing import Any

import dash_ag_grid as dag
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate
from flask import Response, request, send_from_directory
from plotly.subplots import make_subplots
from werkzeug.serving import make_server

from analysis.explore import REPORT_PATH
from analysis.explore.images import flat_value, input_png
from analysis.explore.session import (
    MAX_QUESTION_CHARS,
    SHOWN_CHANGES,
    Explorer,
    ExploreError,
    ModelKey,
    ModelView,
    ReportLinks,
    ReportSection,
    SplitAnswer,
    UnitProfile,
    answers_filename,
    answers_frame,
    format_units,
    parse_units,
    unit_link,
)
from analysis.figures import DIVERGING, image_grid
from analysis.formatting import count
from analysis.sections.base import interval_note
from analysis.stats import Q
from sweep.kernels import NEURON_MODES

HOST = "127.0.0.1"
"""The only interface the explorer listens on."""

MAX_REQUEST_BYTES = 1 << 20
"""Largest request body the server reads (the ask form is far smaller)."""

TEXTAREA_CHARS = 10 * MAX_QUESTION_CHARS
"""What the unit-list box accepts: longer than :data:`MAX_QUESTION_CHARS`, so an over-long
list gets its message instead of being cut silently."""

HEAD_CHARS = 300
"""Most characters of the unit list repeated above an answer."""

MAP_PX = 260
"""Side of one heatmap's plotting area in the unit view, in pixels."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 1.5rem 2rem; color: #222; }
h1 { font-size: 1.4rem; margin: 1rem 0 0.5rem; }
h3 { margin: 1.2rem 0 0.4rem; }
.bar { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
.bar > div { min-width: 14rem; }
table.numbers { border-collapse: collapse; margin: 0.5rem 0; }
table.numbers td, table.numbers th { border-bottom: 1px solid #ddd; padding: 0.2rem 0.6rem; text-align: right; }
table.numbers th { background: #f3f3f3; }
.tiles { display: flex; flex-wrap: wrap; gap: 0.6rem; }
.tile { text-align: center; font-size: 0.8rem; }
.tile img { display: block; border: 1px solid #ccc; image-rendering: pixelated; }
.tile.flat { max-width: 8rem; color: #555; padding-top: 2rem; }
header.bar { justify-content: space-between; }
header a, .sections a { margin-right: 0.8rem; }
details.sections { font-size: 0.9rem; }
.message { color: #b00020; font-weight: 600; margin: 0.4rem 0; min-height: 1.2rem; }
.message .found { color: #222; font-weight: normal; }
.note { color: #555; font-size: 0.9rem; max-width: 60rem; }
button { margin-right: 0.4rem; }
textarea { width: 40rem; max-width: 100%; height: 4rem; font-family: monospace; }
"""

_CURVE_LINE = {"color": "#1f77b4", "width": 1}


# --------------------------------------------------------------------------- formatting


def pp(fraction: float) -> str:
    """An accuracy change in signed percentage points, 2 decimals (``+0.28``)."""
    return f"{100 * fraction:+.2f}"


def pct(fraction: float) -> str:
    """An accuracy in percent, 2 decimals (``97.56``)."""
    return f"{100 * fraction:.2f}"


def _table(header: list[str], rows: list[list[Any]], class_name: str = "numbers",
           **attributes: Any) -> html.Table:
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])),
         html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])],
        className=class_name, **attributes)


def _tile(src: str, caption: str, **attributes: Any) -> html.Div:
    return html.Div([html.Img(src=src), html.Span(caption)], className="tile", **attributes)


def changed_tiles(view: ModelView, answer: SplitAnswer) -> html.Div:
    """The first :data:`SHOWN_CHANGES` images an answer breaks and fixes, each captioned
    with its true label and the prediction before → after."""
    X, y = view.splits[answer.split].X, view.splits[answer.split].y
    blocks = []
    for name, rows in (("broken", answer.broken_rows), ("fixed", answer.fixed_rows)):
        tiles = [_tile(input_png(X[r], view.shape),
                       f"true {y[r]}, pred {answer.base_labels[r]}→{answer.labels[r]}",
                       **{"data-row": str(r)})
                 for r in rows[:SHOWN_CHANGES]]
        shown = f"first {len(tiles)} of " if len(rows) > len(tiles) else ""
        title = f"{name} on {answer.split}: {shown}{count(len(rows), 'image')}"
        blocks.append(html.Div([html.H4(title), html.Div(tiles or "none", className="tiles")],
                               id=f"{name}-images"))
    return html.Div(blocks)


def answer_table(answers: list[SplitAnswer]) -> html.Table:
    """One row per split: images, accuracy before and after (%), the change (pp), broken,
    fixed and the exact McNemar p-value."""
    header = ["split", "images", "accuracy before (%)", "after (%)", "change (pp)", "broken",
              "fixed", "McNemar p"]
    body = [html.Tr([html.Td(v, className=c) for v, c in zip(
        [a.split, str(a.n_samples), pct(a.accuracy_base), pct(a.accuracy), pp(a.effect),
         str(a.broken), str(a.fixed), f"{a.p_mcnemar:.4g}"],
        ["split", "n", "before", "after", "change", "broken", "fixed", "p"])],
        **{"data-split": a.split}) for a in answers]
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)],
                      className="numbers", id="answer-table")


# --------------------------------------------------------------------------- views


def counts_table(view: ModelView, mode: str) -> html.Div:
    """Helpful / neutral / harmful neurons per split and layer, with FDR survivors."""
    impact = view.impact(mode)
    rows = [[r.split, r.layer, r.n_units, r.n_helpful, r.n_neutral, r.n_harmful, r.n_harmful_fdr,
             pct(r.accuracy_base), "" if pd.isna(r.max_unit) else f"{pp(r.max_effect)} (unit {r.max_unit})"]
            for r in impact.itertuples()]
    return _table(["split", "layer", "units", "helpful", "neutral", "harmful",
                   f"harmful, FDR q≤{Q}", "accuracy (%)", "largest gain (pp)"], rows, id="counts")


def curves_figure(view: ModelView, mode: str) -> go.Figure:
    """Sorted single-neuron effects of every layer on test (the paper's figure); each point
    carries its ``[layer, unit]`` so a click selects the unit."""
    rows = view.effects(mode, "test")
    layers = sorted(rows["layer"].unique())
    figure = make_subplots(rows=1, cols=max(len(layers), 1), subplot_titles=[f"layer {l}" for l in layers])
    for i, layer in enumerate(layers, start=1):
        part = rows[rows["layer"] == layer].sort_values(["effect", "unit"], ascending=[False, True])
        figure.add_trace(go.Scatter(
            x=np.arange(len(part)), y=100 * part["effect"], mode="lines+markers", line=_CURVE_LINE,
            marker={"size": 6}, customdata=part[["layer", "unit"]].to_numpy().tolist(),
            hovertemplate="unit %{customdata[1]}<br>%{y:+.2f} pp<extra></extra>", showlegend=False,
        ), row=1, col=i)
        figure.add_hline(y=0, line={"color": "red", "width": 1}, row=1, col=i)
        figure.update_xaxes(title_text="neuron (sorted by effect)", row=1, col=i)
    figure.update_yaxes(title_text="test accuracy change on removal (pp)", row=1, col=1)
    figure.update_layout(height=340, margin={"l": 60, "r": 10, "t": 30, "b": 40}, clickmode="event")
    return figure


def stability_block(view: ModelView, mode: str) -> html.Div:
    """Shares of each category across this model's seeds with t-intervals (two seeds or more)."""
    shares = view.seed_shares(mode)
    if shares.empty:
        return html.P("One seed of this model: cross-seed stability needs two or more.", className="note")
    rows = [[r.split, r.layer, r.n_seeds] + [f"{getattr(r, f'pct_{c}_mean'):.1f} "
                                              f"({getattr(r, f'pct_{c}_low'):.1f}–{getattr(r, f'pct_{c}_high'):.1f})"
                                              for c in ("helpful", "neutral", "harmful")]
            for r in shares.itertuples()]
    return html.Div([
        _table(["split", "layer", "seeds", "helpful % (95 % CI)", "neutral %", "harmful %"], rows,
               id="stability"),
        html.P(interval_note(int(shares["n_seeds"].min())), className="note"),
    ])


def unit_columns(table: pd.DataFrame) -> list[dict[str, Any]]:
    """AG Grid column definitions of :meth:`ModelView.unit_table` (sortable, filterable)."""
    formats = {"effect_pp": "+.2f", "val_effect_pp": "+.2f", "p_mcnemar": ".3g"}
    names = {"effect_pp": "effect test (pp)", "val_effect_pp": "effect val (pp)",
             "p_mcnemar": "McNemar p (test)", "mutual_information": "MI (bits)",
             "entropy": "entropy (bits)", "activation_rate": "firing rate"}
    return [{"field": c, "headerName": names.get(c, c),
             "filter": "agNumberColumnFilter",
             "valueFormatter": {"function": f"params.value == null ? '' : d3.format('{formats.get(c, '.3f')}')(params.value)"}}
            if c not in ("layer", "unit") else {"field": c, "filter": "agNumberColumnFilter", "width": 90}
            for c in table.columns]


def signed_heatmap(values: np.ndarray, shape: tuple[int, ...] | None, scale: str, source: str) -> go.Figure:
    """Signed per-input values as a heatmap with a colour scale centred at 0 (red positive):
    on the image grid (one panel per channel of a colour image), else on a near-square grid
    (:func:`analysis.figures.image_grid`); hovering names the ``source`` index and its value.

    Parameters
    ----------
    values : ndarray of shape (n_sources,), not all equal (see :func:`flat_value`)
    shape : the input image shape, or None
    scale : the colour bar's title (``weight``, ``effect (pp)``)
    source : what one value belongs to (``pixel``, ``unit``)
    """
    image = image_grid(values, shape)
    index = image_grid(np.arange(len(values), dtype=float), shape)
    limit = float(np.nanmax(np.abs(image)))
    colour = image.ndim == 3
    panels = [(image[..., c], index[..., c]) for c in range(3)] if colour else [(image, index)]
    figure = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.03,
                           subplot_titles=("red", "green", "blue") if colour else None)
    for i, (z, where) in enumerate(panels, start=1):
        figure.add_trace(go.Heatmap(
            z=z, customdata=where, coloraxis="coloraxis",
            hovertemplate=f"{source} %{{customdata:.0f}}: %{{z:.3g}}<extra></extra>"), row=1, col=i)
        figure.update_yaxes(autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", constrain="domain",
                            showticklabels=False, row=1, col=i)
        figure.update_xaxes(constrain="domain", showticklabels=False, row=1, col=i)
    figure.update_layout(
        coloraxis={"colorscale": DIVERGING, "cmin": -limit, "cmax": limit,
                   "colorbar": {"title": {"text": scale}, "thickness": 14}},
        width=MAP_PX * len(panels) + 110, height=MAP_PX + 40,
        margin={"l": 10, "r": 10, "t": 30 if colour else 10, "b": 10}, plot_bgcolor="white")
    return figure


def _number(value: float) -> str:
    return "no value" if not np.isfinite(value) else f"{value + 0.0:.3g}"


def signed_panel(values: np.ndarray, shape: tuple[int, ...] | None, title: str, scale: str, source: str,
                 flat: str, element_id: str) -> html.Div:
    """A titled :func:`signed_heatmap`, or, where every value is the same, the sentence
    ``flat`` (``{value}`` filled in) instead of a panel of one colour."""
    value = flat_value(values)
    if value is not None:
        shown: Any = html.P(flat.format(value=_number(value)), className="note flat", id=element_id)
    else:
        shown = dcc.Graph(figure=signed_heatmap(values, shape, scale, source), id=element_id,
                          config={"displayModeBar": False})
    return html.Div([html.H4(title), shown])


def bar_panel(classes: np.ndarray, values: np.ndarray, title: str, axis: str, flat: str) -> Any:
    """:func:`bar_figure`, or the sentence ``flat`` where every class has the same value."""
    value = flat_value(values)
    if value is not None:
        return html.Div([html.H4(title), html.P(flat.format(value=_number(value)), className="note flat")],
                        style={"width": "22rem"})
    return dcc.Graph(figure=bar_figure(classes, values, title, axis), config={"displayModeBar": False})


def bar_figure(classes: np.ndarray, values: np.ndarray, title: str, axis: str) -> go.Figure:
    """A bar per class."""
    figure = go.Figure(go.Bar(x=[str(c) for c in classes], y=values, marker_color="#1f77b4"))
    figure.update_layout(title=title, height=260, width=360, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                         xaxis_title="class", yaxis_title=axis)
    return figure


def report_links(sections: list[ReportSection]) -> list[Any]:
    """Links to report sections, ``index.html#s<N>`` under :data:`REPORT_PATH`."""
    return [html.A(s.title, href=f"{REPORT_PATH}index.html#{s.anchor}") for s in sections]


def profile_view(view: ModelView, profile: UnitProfile, mode: str,
                 named: list[ReportSection] | None = None) -> html.Div:
    """The unit view: what the unit looks for and what removing it does.

    Parameters
    ----------
    named : the report sections that link to this unit (listed with links), if any
    """
    r = profile.removal
    shape, X, y = view.shape, view.data.X_test, view.data.y_test
    layer, unit = profile.layer, profile.unit
    drawn = profile.weights_drawn
    graphs: list[Any] = [signed_panel(profile.weights, profile.weights_shape, drawn, "weight", "input",
                                      "every weight drawn is {value}", "unit-weights")]
    if profile.feature_map is not None:
        graphs.append(signed_panel(profile.feature_map.ravel(), profile.feature_map.shape,
                                   f"mean feature map over the test images ({profile.feature_map.shape[0]} x "
                                   f"{profile.feature_map.shape[1]})", "output", "position",
                                   "its mean output is {value} at every position", "unit-feature-map"))
    if profile.class_effect is not None:
        graphs.append(bar_panel(profile.classes, 100 * profile.class_effect, "per-class effect (test)",
                                "accuracy change (pp)", "removing it changes every class's test "
                                "accuracy by {value} pp"))
    graphs.append(bar_panel(profile.classes, profile.class_activation, "mean output per class (test)",
                            "output", "its mean output is {value} for every class"))
    top = [_tile(input_png(X[i], shape), f"label {y[i]}, output {v:.2f}")
           for i, v in zip(profile.top_rows, profile.top_values)]
    views = [_tile(input_png(v, shape), f"class {c}") if np.isfinite(v).any()
             else html.Div(f"class {c}: never fires on its test images", className="tile flat")
             for c, v in zip(profile.classes, profile.class_views)]
    parts = [
        html.H3(f"Unit {unit} of layer {layer}", id="unit-title"),
        html.P([f"Removed alone ({mode}): test accuracy {pp(r.effect)} pp "
                f"({pct(r.accuracy_base)} % → {pct(r.accuracy)} %), breaks {r.broken}, fixes {r.fixed}, "
                f"McNemar p = {r.p_mcnemar:.4g}. ",
                html.Button("add to question", id="add-profile")], id="unit-summary"),
    ]
    if named:
        parts.append(html.P(["Named in the report: ", *report_links(named)], id="unit-report", className="note"))
    parts += [
        html.Div(graphs, className="bar"),
        html.H4("top-activating test images"), html.Div(top, className="tiles", id="top-images"),
        html.H4("what each class looks like to this unit: test images of the class averaged, "
                "weighted by the unit's rectified output (Bau)"),
        html.Div(views, className="tiles", id="class-views"),
        changed_tiles(view, r),
    ]
    if profile.synapses is not None:
        source = "input pixel" if layer == 0 else f"unit of layer {layer - 1}"
        parts.append(signed_panel(
            100 * profile.synapses, shape if layer == 0 else None,
            f"incoming synapses removed one at a time: test effect per {source} "
            "(red raises accuracy; not swept: 0)", "effect (pp)", "pixel" if layer == 0 else source,
            f"removing any one incoming synapse alone changes test accuracy by {{value}} pp "
            f"({len(profile.synapses)} synapses; those not swept count as 0)", "synapse-map"))
    if profile.partners is not None:
        rows = [html.Tr([html.Td(f"{r.layer}:{r.unit}"), html.Td(pp(r.effect_pair)), html.Td(pp(r.interaction)),
                         html.Td(f"{r.p_mcnemar:.4g}")]) for r in profile.partners.itertuples()]
        head = html.Tr([html.Th(h) for h in ("partner", "both removed (pp)", "interaction (pp)", "McNemar p")])
        parts += [html.H4("strongest partners in the pair sweep (test): interaction = effect of both minus "
                          "the two single effects; < 0 they back each other up, > 0 they cancel"),
                  html.Table([head, *rows], id="partners")]
    return html.Div(parts)


# --------------------------------------------------------------------------- app


def mode_options(explorer: Explorer) -> tuple[list[dict[str, str]], str]:
    """The one mode selector's options (every mode of ``sweep.kernels.NEURON_MODES``; those
    without neuron-sweep rows marked "live only"; a per-image mode's live answers are one draw,
    draw 0 of seed 0, as ``sweep.kernels.ablate_joint``) and its first value (``zero`` when
    swept)."""
    swept = set(explorer.neurons["mode"].unique())
    options = [{"label": m if m in swept else f"{m} (live only: not swept)", "value": m} for m in NEURON_MODES]
    first = "zero" if "zero" in swept else sorted(swept)[0]
    return options, first


def header(explorer: Explorer, report: ReportLinks | None) -> html.Header:
    """The title, and links to the report and its sections when the report exists."""
    links: list[Any] = []
    if report is not None and report.exists:
        sections = report.sections()
        links = [html.A("Report", href=f"{REPORT_PATH}index.html", id="report-link")]
        if sections:
            links.append(html.Details([html.Summary("report sections"), html.Div(report_links(sections))],
                                      className="sections", id="report-sections"))
    return html.Header([html.H1(f"Ablation explorer: study {explorer.study}"), html.Div(links)],
                       className="bar")


def layout(explorer: Explorer, report: ReportLinks | None = None) -> html.Div:
    """The page: a network and mode picker over three tabs (overview, unit, ask)."""
    keys = explorer.keys
    options, first = mode_options(explorer)
    picker = html.Div([
        html.Div([html.Label("network"), dcc.Dropdown(
            id="model", options=[{"label": k.label, "value": k.value} for k in keys],
            value=keys[0].value, clearable=False)]),
        html.Div([html.Label("mode (overview, unit and ask)"),
                  dcc.Dropdown(id="mode", options=options, value=first, clearable=False)]),
    ], className="bar")
    overview = html.Div([
        html.P(id="run-line", className="note"),
        html.H3("Single-neuron effects on test (click a point to open its unit)"),
        dcc.Graph(id="curves", config={"displaylogo": False}),
        html.H3("Helpful, neutral and harmful neurons"), html.Div(id="counts-block"),
        html.H3("Across seeds"), html.Div(id="stability-block"),
    ])
    unit = html.Div([
        html.Div(id="profile", children=html.P(NO_UNIT)),
        html.H3("All hidden units"),
        html.P(className="note", id="units-note"),
        dag.AgGrid(id="units", columnDefs=[], rowData=[],
                   getRowId="params.data.layer + ':' + params.data.unit",
                   defaultColDef={"sortable": True, "filter": True, "resizable": True, "flex": 1},
                   dashGridOptions={"pagination": True, "paginationPageSize": 20},
                   style={"height": "420px"}),
    ])
    ask = html.Div([
        html.P("Units to remove together, as layer:unit or layer:first-last (e.g. 0:3, 0:17, 1:0-9), "
               "each once, in the mode chosen above; chosen units come from the val sweep, never from "
               "test.", className="note"),
        dcc.Textarea(id="question", value="", maxLength=TEXTAREA_CHARS),
        html.Div([
            html.Button("add selected unit", id="add-selected"),
            html.Button("harmful on val", id="pick-harmful"),
            html.Button("top k by val effect", id="pick-top"),
            dcc.Input(id="top-k", type="number", value=5, min=1, step=1, style={"width": "5rem"}),
            html.Button("clear", id="clear"),
        ]),
        html.Div([
            html.Button("knock out class", id="pick-knockout",
                        title="the smallest unit set, chosen greedily on val, that brings this class to chance "
                              "while every other class loses at most 1 pp (Bau's question)"),
            dcc.Dropdown(id="knockout-class", clearable=False, style={"width": "6rem", "display": "inline-block"}),
            html.Label([" other classes may lose at most ",
                        dcc.Input(id="knockout-other", type="number", value=1, min=0, max=100, step="any",
                                  style={"width": "5rem"}), " pp on val"]),
        ]),
        html.Div(id="pick-message", className="message"),
        html.Button("ask", id="ask"),
        html.Div(id="ask-message", className="message"),
        html.Div(id="answer"),
        dcc.Store(id="answer-csv"),
        dcc.Download(id="download"),
    ])
    return html.Div([
        dcc.Location(id="url", refresh=False),
        header(explorer, report),
        picker,
        html.Div(id="link-message", className="message"),
        dcc.Store(id="selected"),
        dcc.Tabs(id="tabs", value="overview", children=[
            dcc.Tab(overview, label="Overview", value="overview", id="tab-overview"),
            dcc.Tab(unit, label="Unit", value="unit", id="tab-unit"),
            dcc.Tab(ask, label="Ask", value="ask", id="tab-ask"),
        ]),
    ])


NO_UNIT = "Click a unit in the overview or the table below."
"""The unit tab before a unit of the chosen network is selected."""


def make_app(explorer: Explorer, token: str, report: ReportLinks | None = None) -> Dash:
    """The Dash app of ``explorer``, refusing requests without ``token``.

    Parameters
    ----------
    explorer : Explorer
    token : str — the access token (the URL's ``?token=``)
    report : ReportLinks, optional — the report folder served under :data:`REPORT_PATH` and
        linked from the pages while its ``index.html`` exists (read again on every page load)
    """
    app = Dash(__name__, title="ablation explorer", update_title=None, serve_locally=True,
               include_assets_files=False, suppress_callback_exceptions=True)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + STYLE + "</style>")
    app.layout = lambda: layout(explorer, report)
    _guard(app, token)
    _serve_report(app, report)
    _callbacks(app, explorer, report)
    return app


def _serve_report(app: Dash, report: ReportLinks | None) -> None:
    """Serve the report folder's files under :data:`REPORT_PATH` (404 with a hint without it)."""

    @app.server.route(f"{REPORT_PATH}<path:name>")
    def report_file(name: str) -> Response:
        if report is None or not report.exists:
            where = f" in {str(report.folder)!r}" if report is not None else ""
            return Response(f"404 Not Found: no report{where}: write it with python -m analysis RESULTS "
                            "--out DIR, and serve it with python -m analysis explore RESULTS --report DIR\n",
                            status=404, mimetype="text/plain")
        return send_from_directory(report.folder.resolve(), name)  # 404 outside the folder

    @app.server.route(REPORT_PATH)
    def report_index() -> Response:
        return report_file("index.html")


def _guard(app: Dash, token: str) -> None:
    """Refuse every request without the token (query) or the cookie a tokened request set."""
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    cookie = "explore-" + hashlib.sha256(token.encode()).hexdigest()[:12]

    @server.before_request
    def check() -> Response | None:
        given = request.args.get("token") or request.cookies.get(cookie) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return Response("403 Forbidden: open the explorer with the URL it printed "
                            "(it carries the access token)\n", status=403, mimetype="text/plain")
        return None

    @server.after_request
    def remember(response: Response) -> Response:
        if request.args.get("token"):
            response.set_cookie(cookie, token, httponly=True, samesite="Strict")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        return response


def _view(explorer: Explorer, model: str) -> ModelView:
    return explorer.view(ModelKey.parse(model))


def _callbacks(app: Dash, explorer: Explorer, report: ReportLinks | None) -> None:
    @app.callback(Output("run-line", "children"), Output("curves", "figure"),
                  Output("counts-block", "children"), Output("stability-block", "children"),
                  Output("units", "rowData"), Output("units", "columnDefs"),
                  Output("units-note", "children"),
                  Input("model", "value"), Input("mode", "value"))
    def overview(model: str, mode: str) -> tuple[Any, ...]:
        view = _view(explorer, model)
        run = view.run
        accuracies = ", ".join(f"{s} {pct(run[f'{s}_accuracy'])} %" for s in ("train", "val", "test")
                               if run.get(f"{s}_accuracy") is not None)
        line = f"{view.key.label}: {view.description}; accuracy {accuracies}."
        table = view.unit_table(mode)
        records = table.astype(object).where(table.notna(), None).to_dict("records")
        note = ("Every hidden unit: sort or filter a column, click a row to open the unit. Statistics of "
                "the unit's output (selectivity; entropy and mutual information with the label of its "
                f"firing, in bits) are computed on {view.statistics['split'].iloc[0]}.")
        if view.effects(mode, "test").empty:
            unswept = unswept_note(explorer, mode)
            figure = go.Figure(layout={"height": 120, "xaxis": {"visible": False}, "yaxis": {"visible": False},
                                       "annotations": [{"text": f"no neuron sweep in mode {mode}",
                                                        "showarrow": False}]})
            return (line, figure, html.P(unswept, className="note"), html.P(f"No neuron sweep in mode {mode}.",
                                                                             className="note"),
                    records, unit_columns(table), note + " " + unswept)
        return (line, curves_figure(view, mode), counts_table(view, mode), stability_block(view, mode),
                records, unit_columns(table), note)

    @app.callback(Output("model", "value"), Output("selected", "data"), Output("tabs", "value"),
                  Output("link-message", "children"), Input("url", "search"))
    def follow_link(search: str | None) -> tuple[Any, ...]:
        """Open the unit a unit link names (:data:`analysis.explore.UNIT_URL`)."""
        try:
            link = unit_link(search)
            if link is None:
                raise PreventUpdate
            key, (layer, unit) = link
            view = explorer.view(key)
            if not (layer < len(view.net.hidden_sizes) and unit < view.net.hidden_sizes[layer]):
                raise ExploreError(f"the link's unit {layer}:{unit} is not in {key.label} (hidden layers "
                                   f"{list(view.net.hidden_sizes)})")
        except ExploreError as error:
            return no_update, no_update, no_update, f"cannot open the link: {error}"
        return key.value, {"model": key.value, "layer": layer, "unit": unit}, "unit", ""

    @app.callback(Output("selected", "data", allow_duplicate=True), Output("tabs", "value", allow_duplicate=True),
                  Input("curves", "clickData"), Input("units", "cellClicked"), State("model", "value"),
                  prevent_initial_call=True)
    def select(click: dict | None, cell: dict | None, model: str) -> tuple[Any, Any]:
        if ctx.triggered_id == "curves" and click:
            layer, unit = click["points"][0]["customdata"]
            return {"model": model, "layer": int(layer), "unit": int(unit)}, "unit"
        if ctx.triggered_id == "units" and cell and cell.get("rowId"):
            layer, unit = cell["rowId"].split(":")
            return {"model": model, "layer": int(layer), "unit": int(unit)}, no_update
        return no_update, no_update

    @app.callback(Output("profile", "children"),
                  Input("selected", "data"), Input("mode", "value"), Input("model", "value"))
    def unit_page(selected: dict | None, mode: str, model: str) -> Any:
        if not selected or selected.get("model") != model:
            return html.P(NO_UNIT)
        view = _view(explorer, model)
        try:
            profile = view.profile(selected["layer"], selected["unit"], mode)
        except ExploreError as error:
            return html.P(str(error), className="message")
        named = report.naming(view.key, (profile.layer, profile.unit)) if report is not None else []
        return profile_view(view, profile, mode, named)

    @app.callback(Output("question", "value"), Output("pick-message", "children"),
                  Input("add-selected", "n_clicks"), Input("pick-harmful", "n_clicks"),
                  Input("pick-top", "n_clicks"), Input("clear", "n_clicks"), Input("pick-knockout", "n_clicks"),
                  State("question", "value"), State("selected", "data"), State("model", "value"),
                  State("mode", "value"), State("top-k", "value"), State("knockout-class", "value"),
                  State("knockout-other", "value"), prevent_initial_call=True)
    def pick(*args: Any) -> tuple[Any, Any]:
        question, selected, model, mode, k, target, other_pp = args[-7:]
        trigger = ctx.triggered_id
        if not ctx.triggered[0]["value"]:  # a button just drawn, not clicked
            return no_update, no_update
        view = _view(explorer, model)
        try:
            if trigger == "clear":
                return "", ""
            if trigger == "add-selected":
                return with_selected(view, question, selected), ""
            if trigger == "pick-knockout":
                if target is None or other_pp is None:
                    raise ExploreError("choose the class to knock out and how much the other classes may lose")
                found = view.knockout(int(target), mode, float(other_pp) / 100)
                return format_units(sorted(found.units)), html.Span(found.message, className="found")  # not an error
            rule = "harmful" if trigger == "pick-harmful" else "top"
            return format_units(view.choose(rule, mode, int(k) if k is not None else None)), ""
        except ExploreError as error:
            return no_update, str(error)

    # its own callback: the unit page's button exists only once a unit is open, and a missing
    # Input would stop every other button of the ask tab
    @app.callback(Output("question", "value", allow_duplicate=True),
                  Output("pick-message", "children", allow_duplicate=True),
                  Input("add-profile", "n_clicks"), State("question", "value"), State("selected", "data"),
                  State("model", "value"), prevent_initial_call=True)
    def add_profile(clicks: int | None, question: str | None, selected: dict | None, model: str) -> tuple[Any, str]:
        if not clicks:  # a button just drawn, not clicked
            return no_update, no_update
        try:
            return with_selected(_view(explorer, model), question, selected), ""
        except ExploreError as error:
            return no_update, str(error)

    @app.callback(Output("knockout-class", "options"), Output("knockout-class", "value"), Input("model", "value"))
    def knockout_classes(model: str) -> tuple[list[dict[str, Any]], int]:
        classes = _view(explorer, model).net.classes
        return [{"label": str(label), "value": i} for i, label in enumerate(classes)], 0

    @app.callback(Output("answer", "children"), Output("ask-message", "children"), Output("answer-csv", "data"),
                  Input("ask", "n_clicks"), State("question", "value"), State("model", "value"),
                  State("mode", "value"), prevent_initial_call=True)
    def answer(_: int, question: str | None, model: str, mode: str) -> tuple[Any, str, Any]:
        view = _view(explorer, model)
        start = time.perf_counter()
        try:
            units = parse_units(question, view.net.hidden_sizes)
            answers = view.ask(units, mode)
        except ExploreError as error:
            return None, str(error), None
        elapsed = 1000 * (time.perf_counter() - start)
        listed = format_units(units)
        head = (f"Removing {count(len(units), 'unit')} together ({mode}) on {view.key.label}: "
                f"{listed if len(listed) <= HEAD_CHARS else listed[:HEAD_CHARS] + ' ...'}")
        csv = {"filename": answers_filename(view.key, mode),
               "content": answers_frame(view.key, units, mode, answers).to_csv(index=False)}
        return html.Div([
            html.P(head, id="answer-head"), answer_table(answers),
            html.P([f"answered in {elapsed:.0f} ms ", html.Button("download CSV", id="download-answer")],
                   className="note"),
            changed_tiles(view, answers[-1]),
        ]), "", csv

    @app.callback(Output("download", "data"), Input("download-answer", "n_clicks"), State("answer-csv", "data"),
                  prevent_initial_call=True)
    def download(clicks: int | None, csv: dict | None) -> Any:
        if not clicks or not csv:
            raise PreventUpdate
        return {**csv, "type": "text/csv"}


def with_selected(view: ModelView, question: str | None, selected: dict | None) -> str:
    """The question with the selected unit added.

    Raises
    ------
    ExploreError
        Without a selected unit of this network, or when the question already has it.
    """
    if not selected or selected.get("model") != view.key.value:
        raise ExploreError("no unit selected: click one in the overview or the unit table")
    typed = parse_units(question, view.net.hidden_sizes) if (question or "").strip() else []
    chosen = (selected["layer"], selected["unit"])
    if chosen in typed:
        raise ExploreError(f"unit {chosen[0]}:{chosen[1]} is already in the question")
    return format_units([*typed, chosen])


def unswept_note(explorer: Explorer, mode: str) -> str:
    """Why the overview of ``mode`` is empty: the neuron sweep has no rows in it."""
    swept = ", ".join(sorted(explorer.neurons["mode"].unique()))
    return (f"The study's neuron sweep has no rows in mode {mode} (swept: {swept}): the overview and effects "
            f"are empty; the unit view's removal and the Ask tab answer live in {mode}.")


def serve(explorer: Explorer, port: int = 0, report: ReportLinks | None = None) -> None:
    """Serve ``explorer`` on 127.0.0.1 until interrupted, printing its URL first.

    Parameters
    ----------
    port : int — 0 (default) for a free port
    report : ReportLinks, optional — the report folder to serve and link (see :func:`make_app`)

    Raises
    ------
    OSError
        If the port cannot be listened on (taken, or privileged).
    """
    token = secrets.token_urlsafe(24)
    app = make_app(explorer, token, report)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, port))  # OSError when taken (Werkzeug would exit by itself)
        listener.listen()
        server = make_server(HOST, port, app.server, threaded=True, fd=listener.fileno())
        print(f"http://{HOST}:{server.port}/?token={token}", flush=True)
        server.serve_forever()
