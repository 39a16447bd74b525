"""The report of a search: what to pick, why, and how the search went.

``nas report RUN`` reads the run's finished trials (:func:`nas.search.open_run`), prints the
front, and writes ``RUN/report.html`` (one self-contained page: recommendations with their
export commands, the front plot, a picture of every front member, the search's history,
decision importance, every trial, the configuration) and ``RUN/pareto.png``;
``nas report RUN --trial N`` writes trial N's picture alone (``RUN/trial-N.svg`` and
``.png``). The page and the SVG need nothing beyond the core dependencies; the PNG files
need matplotlib (``pip install nas[report]``).

The modules: :mod:`.table` (terminal table, JSON), :mod:`.analysis` (history,
recommendations, importance), :mod:`.scene` (pictures as SVG or PNG), :mod:`.pictures`
(each picture), :mod:`.page` (the HTML page and the files).
"""

from .analysis import (
    IMPORTANCE_MIN_TRIALS,
    History,
    Importance,
    baseline_run,
    histories,
    importances,
    knee,
    recommendations,
)
from .page import (
    CSP,
    Report,
    ReportConfig,
    TrialPicture,
    dashboard_command,
    export_command,
    render_html,
    search_lines,
    write_report,
    write_trial_picture,
)
from .pictures import arch_picture, front_plot, history_plot, importance_plot
from .table import arch_summary, front_json, front_table, latency_note

__all__ = ["write_report", "write_trial_picture", "render_html", "front_table", "front_json",
           "latency_note", "Report", "ReportConfig", "TrialPicture", "search_lines",
           "arch_summary", "arch_picture", "front_plot", "history_plot", "importance_plot",
           "recommendations", "knee", "importances", "Importance", "IMPORTANCE_MIN_TRIALS",
           "histories", "History", "baseline_run", "export_command", "dashboard_command", "CSP"]
