"""Reports a person can read: ``hbfuzz show`` (see docs in each module).

- :mod:`fuzzer.report.html`: ``render_report(events, history, verdicts, *, schedule,
  config, replay_command, ...) -> str`` (one self-contained HTML page with the
  space-time diagram), ``render_bundle(bundle, path) -> str``, ``write_report``;
- :mod:`fuzzer.report.layout`: ``build_diagram(...)`` (the diagram as data: pure);
- :mod:`fuzzer.report.summary`: ``summarize_campaign(out, dest) -> Path`` and
  ``render_summary(findings, plot_rows, stats)``;
- :mod:`fuzzer.report.exports`: ``shiviz_log(events)``, ``history_edn(history)``,
  ``write_exports(dir, stem, events, history)``;
- :mod:`fuzzer.report.command`: ``show(path, output)`` behind ``hbfuzz show``.
"""
