# The operator's image, for kind and for clusters:
#   docker build -t identity-risk-operator:dev .
# The chart runs it as UID 65532 with a read-only root filesystem and every capability dropped;
# nothing here needs to write outside /tmp and the decision-log volume.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
USER 65532:65532
ENTRYPOINT ["identity-risk"]
CMD ["run"]
