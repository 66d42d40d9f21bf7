"""Non-streamlit helpers for the dashboard pages: where checkpoints and runs live,
loading a checkpoint's evaluation data without downloads, and encoding it.

The pages (``app_pages/*.py``) call these and draw; nothing here imports streamlit.
"""
