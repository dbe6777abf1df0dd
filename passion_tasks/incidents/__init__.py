"""Incidents: events of several series grouped (``model``), what drove them (``causes``), and the day's
incidents with their causes (``day``), as the report and the alerts both see them."""
