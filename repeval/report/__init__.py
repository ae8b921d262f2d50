"""Reports: result tables, plots and a self-contained HTML report over one or more runs.

Entry points the CLI calls: :func:`repeval.report.tables.table_command` and
:func:`repeval.report.html.write_report`.
"""
