"""The Airflow side of Passion: settings from Variables and connections, retries, the features sensor and
the webhook notifier. The DAGs import it; ``passion_tasks`` never does.

Airflow puts the plugins folder on ``sys.path``; ``plugins/.airflowignore`` keeps the plugin manager from
loading these modules a second time as plugins (they define none).
"""
