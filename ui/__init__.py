"""The Streamlit front end (built in its own issue) on top of the ``search`` API."""
