"""OpenTelemetry tracing, optional: on only when an OTEL_* variable is set (the standard
ones: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, …) and the packages are installed:

    pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http \\
        opentelemetry-instrumentation-django opentelemetry-instrumentation-celery

Web requests get a span each (Django), tasks too (Celery), and the trace context travels
in the task's message headers, so a publish's trace runs from the API view into the worker.
Nothing here is required: without the variables or the packages, `configure` does nothing.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("marketerapi.tracing")
_configured = False


def wanted() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(name.startswith("OTEL_") for name in os.environ)


def configure() -> bool:
    """Set up tracing once per process when wanted and possible; True if it is on."""
    global _configured
    if _configured or not wanted():
        return _configured
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        logger.warning("OTEL_* is set but OpenTelemetry is not installed (%s); tracing stays off", exc.name)
        return False
    # Resource.create() and the exporter read OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and
    # OTEL_EXPORTER_OTLP_* themselves.
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    _configured = True
    return True
