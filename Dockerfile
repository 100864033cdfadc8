# One slim image for every process: bot, worker and beat differ only in their command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY bot ./bot
COPY tasks ./tasks
COPY config ./config
RUN useradd --system --uid 10001 --no-create-home chatbot
USER chatbot
CMD ["python", "-m", "bot"]
