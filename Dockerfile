# Build: docker build -t zaloflow .   (fly deploy uses this file)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Build settings (SQLite's sync call).
COPY .cargo ./.cargo
COPY src ./src
# The layers below the application (zaloflow-core, zaloflow-store).
COPY crates ./crates
# sqlx::migrate! embeds these at compile time.
COPY migrations ./migrations
# Bench targets are declared in Cargo.toml; the demo builds the shipped rules in.
COPY benches ./benches
COPY rules ./rules
# Staff-facing words (rust-i18n compiles locales/*.yml in), and the build script that rebuilds
# when they change.
COPY locales ./locales
COPY build.rs ./
RUN cargo build --release --locked --bin zaloflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data
WORKDIR /app
COPY --from=build /src/target/release/zaloflow /usr/local/bin/zaloflow
COPY rules ./rules
ENV PORT=8080 DATABASE_URL=sqlite:///data/zaloflow.db ZALOFLOW_RULES=/app/rules
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["zaloflow", "serve"]
