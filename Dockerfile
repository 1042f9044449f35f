FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY billing ./billing
COPY credits ./credits
COPY usage ./usage
COPY invoices ./invoices
COPY stripe_emulator ./stripe_emulator
RUN pip install --no-cache-dir .
COPY . .
RUN DATABASE_URL=sqlite:///tmp/x.db SECRET_KEY=build \
    STATICFILES_STORAGE=whitenoise.storage.CompressedManifestStaticFilesStorage \
    python manage.py collectstatic --no-input
RUN useradd --create-home app
USER app
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.py"]
