"""bitrate's OpenAI-compatible HTTP gateway (FastAPI + uvicorn) over the sdk engine."""
