//! `kiln probe --read events`: many SSE subscribers at once, as a farm of
//! browsers on the web UI would be. Each opens `GET /api/v1/events` on its
//! own HTTP/1.1 connection; every event that arrives is printed as
//! `<subscriber> <seq> <at> <arrival ms, fractional> <job>`, so a benchmark
//! can line arrivals up with commits (bench/sse.sh). A line `# ready` comes
//! once every subscriber's stream is open.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

async fn open(url: &str) -> Result<Box<dyn Io>> {
    let (tls, rest) = match url.split_once("://") {
        Some(("https", r)) => (true, r),
        Some(("http", r)) => (false, r),
        _ => bail!("--server: give http:// or https://"),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    let tcp = TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    tcp.set_nodelay(true)?;
    if !tls {
        return Ok(Box::new(tcp));
    }
    let ca = kiln_proto::tls::trusted_ca_file(url).context("an https server needs --ca")?;
    let pem = std::fs::read(&ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for der in kiln_proto::tls::pem_certificates(&pem, "the CA file")? {
        roots.add(der.into())?;
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?;
    Ok(Box::new(stream))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3
}

/// What the probe prints of an event: parsed without building the rest,
/// so the probe takes little of the CPU the server under test needs.
#[derive(serde::Deserialize)]
struct Seen<'a> {
    seq: u64,
    at: i64,
    #[serde(borrow)]
    job: Option<std::borrow::Cow<'a, str>>,
}

/// Reads one chunk of a chunked body; `None` at its end.
async fn chunk(r: &mut (impl AsyncBufRead + Unpin)) -> Result<Option<Vec<u8>>> {
    let mut size = String::new();
    if r.read_line(&mut size).await? == 0 {
        return Ok(None);
    }
    let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
        .with_context(|| format!("bad chunk size {size:?}"))?;
    if n == 0 {
        return Ok(None);
    }
    let mut data = vec![0; n + 2];
    r.read_exact(&mut data).await?;
    data.truncate(n);
    Ok(Some(data))
}

async fn follow(
    id: usize,
    url: String,
    token: String,
    query: String,
    ready: mpsc::UnboundedSender<()>,
    out: mpsc::UnboundedSender<String>,
) -> Result<()> {
    let mut io = open(&url).await?;
    let req = format!(
        "GET /api/v1/events?{query} HTTP/1.1\r\nHost: kiln\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\n\r\n"
    );
    io.write_all(req.as_bytes()).await?;
    let mut r = BufReader::new(io);
    let mut line = String::new();
    r.read_line(&mut line).await?;
    if !line.contains(" 200 ") {
        bail!("subscriber {id}: {}", line.trim());
    }
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        if line.trim().is_empty() {
            break;
        }
    }
    let _ = ready.send(());
    let mut pending = Vec::new();
    while let Some(data) = chunk(&mut r).await? {
        let arrived = now_ms();
        pending.extend_from_slice(&data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = pending.drain(..=end).collect();
            let Some(json) = l.strip_prefix(b"data:") else {
                continue;
            };
            let e: Seen = serde_json::from_slice(json)?;
            let _ = out.send(format!(
                "{id} {} {} {arrived:.1} {}\n",
                e.seq,
                e.at,
                e.job.as_deref().unwrap_or("-")
            ));
        }
    }
    Ok(())
}

pub async fn subscribers(server: &str, n: usize, kinds: &str, seconds: u64) -> Result<()> {
    let url = kiln_proto::client::normalize_url(server);
    let token = crate::session::token(&url).context("no token for the server")?;
    let query = if kinds.is_empty() {
        String::new()
    } else {
        format!("kinds={kinds}")
    };
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    for id in 0..n {
        let (url, token, query) = (url.clone(), token.clone(), query.clone());
        let (ready, tx) = (ready_tx.clone(), tx.clone());
        tokio::spawn(async move {
            if let Err(e) = follow(id, url, token, query, ready, tx).await {
                eprintln!("subscriber {id}: {e:#}");
            }
        });
    }
    drop((ready_tx, tx));
    for _ in 0..n {
        if ready.recv().await.is_none() {
            bail!("not every subscriber connected");
        }
    }
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    writeln!(stdout, "# ready")?;
    stdout.flush()?;
    let end = tokio::time::sleep(std::time::Duration::from_secs(seconds));
    tokio::pin!(end);
    loop {
        tokio::select! {
            _ = &mut end => return Ok(()),
            l = rx.recv() => match l {
                Some(l) => {
                    // One write for all that arrived together: a write per
                    // line would take the CPU the server under test needs.
                    stdout.write_all(l.as_bytes())?;
                    while let Ok(l) = rx.try_recv() {
                        stdout.write_all(l.as_bytes())?;
                    }
                    stdout.flush()?;
                }
                None => return Ok(()),
            },
        }
    }
}
