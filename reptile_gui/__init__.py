"""Reptile Lab desktop app (PySide6 + pyqtgraph) over the headless engine."""
