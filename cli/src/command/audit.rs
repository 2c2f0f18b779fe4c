//! `kubectl datamesh audit ...`: the auditor's view. Reads the trail through
//! the operator's read-only HTTP API: directly with `--server URL` in
//! development, otherwise through the API server's service proxy with the
//! kubeconfig (so the API server authenticates and authorises the reader).
//! `audit verify --db URL` checks a store file or database directly, with
//! the same chain rules the operator uses (`datamesh_operator::audit::chain`).

use super::{Exit, OutputFormat};
use crate::cluster::{self, CliError, ClusterArgs};
use clap::{Args, Subcommand};
use datamesh_operator::audit::{AuditRecord, AuditStore, Verification};
use jiff::{SignedDuration, Timestamp};

/// Arguments of `audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    #[command(flatten)]
    list: ListArgs,
}

/// Subcommands of `audit`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken record and exits 1 if any.
    Verify(VerifyArgs),
}

/// Where the operator's API is.
#[derive(Debug, Clone, Args)]
pub struct OperatorArgs {
    /// The operator's HTTP address, e.g. http://127.0.0.1:8080 (development);
    /// without it, the API server's service proxy is used.
    #[arg(long, value_name = "URL", env = "DATAMESH_SERVER")]
    server: Option<String>,
    /// Namespace of the operator's Service.
    #[arg(long, default_value = "datamesh-system")]
    operator_namespace: String,
    /// Name of the operator's Service (its port is named `http`).
    #[arg(long, default_value = "datamesh")]
    operator_service: String,
}

/// Filters of `audit`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only records about this product (`namespace/name` or a name).
    #[arg(long)]
    product: Option<String>,
    /// Only records about this consumer domain.
    #[arg(long)]
    consumer: Option<String>,
    /// Only records where this domain is consumer or provider.
    #[arg(long)]
    domain: Option<String>,
    /// Only records of this agreement (`namespace/name` or uid).
    #[arg(long)]
    agreement: Option<String>,
    /// Only records at or after T: an RFC 3339 time or an age such as 2h, 7d.
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// At most this many records.
    #[arg(long)]
    limit: Option<u32>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    operator: OperatorArgs,
}

/// Arguments of `audit verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this store directly instead of asking the operator:
    /// sqlite:///path/to/audit.db or postgres://user:password@host/db.
    #[arg(long, value_name = "URL")]
    db: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    operator: OperatorArgs,
}

/// Runs `audit` or `audit verify`.
pub async fn run(cluster: &ClusterArgs, args: &AuditArgs) -> Result<Exit, CliError> {
    match &args.command {
        Some(AuditCommand::Verify(v)) => verify(cluster, v).await,
        None => list(cluster, &args.list).await,
    }
}

/// `--since`: an RFC 3339 time, or an age before now.
fn since(value: &str, now: Timestamp) -> Result<Timestamp, CliError> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(t);
    }
    let age = value
        .strip_suffix('d')
        .and_then(|d| d.parse::<i64>().ok())
        .map(|d| SignedDuration::from_hours(d * 24))
        .or_else(|| value.parse::<SignedDuration>().ok());
    match age {
        Some(age) if !age.is_negative() => Ok(now - age),
        _ => Err(CliError::Input(format!(
            "--since {value:?}: expected an RFC 3339 time (2026-01-31T12:00:00Z) or an age (30m, 2h, 7d)"
        ))),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn list(cluster: &ClusterArgs, args: &ListArgs) -> Result<Exit, CliError> {
    let mut params = Vec::new();
    for (k, v) in [
        ("product", &args.product),
        ("consumer", &args.consumer),
        ("domain", &args.domain),
        ("agreement", &args.agreement),
    ] {
        if let Some(v) = v {
            params.push(format!("{k}={}", encode(v)));
        }
    }
    if let Some(s) = &args.since {
        params.push(format!(
            "since={}",
            encode(&since(s, Timestamp::now())?.to_string())
        ));
    }
    if let Some(n) = args.limit {
        params.push(format!("limit={n}"));
    }
    let path = if params.is_empty() {
        "/api/v1/audit".to_string()
    } else {
        format!("/api/v1/audit?{}", params.join("&"))
    };
    let body = get(cluster, &args.operator, &path).await?;
    #[derive(serde::Deserialize)]
    struct Items {
        items: Vec<AuditRecord>,
    }
    let items: Items = serde_json::from_str(&body)
        .map_err(|e| CliError::Output(format!("unexpected answer from the operator: {e}")))?;
    match args.output {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&items.items)
                .map_err(|e| CliError::Output(e.to_string()))?;
            println!("{text}");
        }
        OutputFormat::Table => print!("{}", table(&items.items)),
    }
    Ok(Exit::Ok)
}

/// Aligned columns: sequence, time, kind, actor, agreement, product, outcome.
fn table(records: &[AuditRecord]) -> String {
    let dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.seq.to_string(),
                r.at.clone(),
                r.kind.clone(),
                r.actor.clone(),
                dash(&r.agreement),
                dash(&r.product),
                dash(&r.outcome),
            ]
        })
        .collect();
    let header = [
        "SEQ",
        "TIME",
        "KIND",
        "ACTOR",
        "AGREEMENT",
        "PRODUCT",
        "OUTCOME",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

async fn verify(cluster: &ClusterArgs, args: &VerifyArgs) -> Result<Exit, CliError> {
    let v: Verification = match &args.db {
        Some(url) => {
            let store = AuditStore::open_existing(url)
                .await
                .map_err(|e| CliError::Input(format!("--db: {e}")))?;
            let v = store
                .verify()
                .await
                .map_err(|e| CliError::Output(format!("reading the audit store: {e}")))?;
            store.close().await;
            v
        }
        None => {
            let body = get(cluster, &args.operator, "/api/v1/audit/verify").await?;
            serde_json::from_str(&body).map_err(|e| {
                CliError::Output(format!("unexpected answer from the operator: {e}"))
            })?
        }
    };
    match args.output {
        OutputFormat::Json => {
            let text =
                serde_json::to_string_pretty(&v).map_err(|e| CliError::Output(e.to_string()))?;
            println!("{text}");
        }
        OutputFormat::Table => match &v.broken {
            None => println!("ok: {} records, chain intact", v.records),
            Some(b) => println!("BROKEN at record {}: {}", b.seq, b.reason),
        },
    }
    Ok(if v.ok { Exit::Ok } else { Exit::Failed })
}

/// GETs `path` from the operator, directly or through the service proxy.
async fn get(cluster: &ClusterArgs, op: &OperatorArgs, path: &str) -> Result<String, CliError> {
    match &op.server {
        Some(server) => get_direct(server, path).await,
        None => {
            let c = cluster::connect(cluster).await?;
            let proxied = format!(
                "/api/v1/namespaces/{}/services/{}:http/proxy{path}",
                op.operator_namespace, op.operator_service
            );
            let request = http::Request::get(&proxied)
                .body(Vec::new())
                .map_err(|e| CliError::Input(e.to_string()))?;
            c.client
                .request_text(request)
                .await
                .map_err(|e| CliError::Refused {
                    verb: "get".into(),
                    resource: format!(
                        "services/{}:http/proxy in namespace {}",
                        op.operator_service, op.operator_namespace
                    ),
                    message: format!(
                        "{e}\n  is the operator installed there? use --operator-namespace/--operator-service, or --server URL"
                    ),
                })
        }
    }
}

/// A plain HTTP/1.1 GET for development (`--server http://127.0.0.1:8080`).
async fn get_direct(server: &str, path: &str) -> Result<String, CliError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = server
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .ok_or_else(|| {
            CliError::Input(format!(
                "--server {server:?}: expected http://HOST:PORT (in a cluster, omit it to go through the API server)"
            ))
        })?;
    let unreachable = |e: std::io::Error| CliError::Output(format!("operator at {server}: {e}"));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(unreachable)?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(unreachable)?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.map_err(unreachable)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    if code == 200 {
        Ok(body)
    } else {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(body);
        Err(CliError::Refused {
            verb: "get".into(),
            resource: path.into(),
            message: format!("HTTP {code}: {message}"),
        })
    }
}

/// Joins a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or_default());
        body = rest.get(n..).unwrap_or_default().trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now: Timestamp = "2026-01-10T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let at = |s| since(s, now).map(|t| t.to_string()).ok();
        assert_eq!(
            at("2026-01-01T00:00:00Z").as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(at("7d").as_deref(), Some("2026-01-03T00:00:00Z"));
        assert_eq!(at("2h").as_deref(), Some("2026-01-09T22:00:00Z"));
        assert!(since("yesterday", now).is_err());
    }

    #[test]
    fn table_has_a_row_per_record() {
        let r: AuditRecord = serde_json::from_value(serde_json::json!({
            "seq": 7, "key": "k", "at": "2026-01-01T00:00:00Z", "kind": "grant",
            "actor": "operator", "agreement": "planning/a", "agreementUid": null,
            "product": "transport/bus", "consumer": "planning", "provider": "transport",
            "purpose": "p", "outcome": "Granted", "detail": {}, "prevHash": "0", "hash": "1"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let t = table(&[r]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2, "{t}");
        assert!(lines[0].starts_with("SEQ  TIME"), "{t}");
        assert!(
            lines[1].starts_with("7    2026-01-01T00:00:00Z  grant"),
            "{t}"
        );
        assert!(lines[1].ends_with("Granted"), "{t}");
    }

    #[test]
    fn dechunks_and_encodes() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(encode("transport/bus"), "transport%2Fbus");
        assert_eq!(
            encode("2026-01-01T00:00:00+01:00"),
            "2026-01-01T00%3A00%3A00%2B01%3A00"
        );
    }
}
