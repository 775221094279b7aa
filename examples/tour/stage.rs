//! The tour's stage: a fresh PKI in a temporary folder, servers on free ports in this
//! process, and the servers' log captured event by event so each step can quote it.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtls::ca::demo::{self, DemoOptions};
use mtls::ca::lab;
use mtls::client::{ClientSettings, Exchange, FetchError, fetch_traced};
use mtls::files::{CertsDir, ClientId, Role};
use mtls::server::{Server, ServerSettings};
use mtls::tls::TlsVersion;
use tokio::sync::{Notify, oneshot};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// One event the server logged: its level, message and fields.
#[derive(Clone, Debug)]
pub struct Event {
    pub level: tracing::Level,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl Visit for Event {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_str(field, &text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            name => self.fields.push((name.to_string(), value.to_string())),
        }
    }
}

/// Every event logged in this process, in order; waits are bounded.
#[derive(Clone, Default)]
pub struct Log(Arc<(Mutex<Vec<Event>>, Notify)>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Log {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut seen = Event {
            level: *event.metadata().level(),
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut seen);
        if let Ok(mut events) = self.0.0.lock() {
            events.push(seen);
        }
        self.0.1.notify_waiters();
    }
}

impl Log {
    /// Installs the capture as this process's subscriber (info and above).
    pub fn install() -> Self {
        let log = Log::default();
        let filter = tracing_subscriber::filter::LevelFilter::INFO;
        tracing_subscriber::registry()
            .with(log.clone().with_filter(filter))
            .init();
        log
    }

    /// How many events there are so far: later reads start there.
    pub fn mark(&self) -> usize {
        self.0.0.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// The events after `mark` whose message starts with `message`, waiting up to two
    /// seconds for the first (the server logs on its own tasks, a moment after the client
    /// has its answer).
    pub async fn after(&self, mark: usize, message: &str) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let notified = self.0.1.notified();
            let found: Vec<Event> = match self.0.0.lock() {
                Ok(events) => events
                    .iter()
                    .skip(mark)
                    .filter(|e| e.message.starts_with(message))
                    .cloned()
                    .collect(),
                Err(_) => Vec::new(),
            };
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

/// A server running in this process until dropped.
pub struct Running {
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The PKI, the lab, and the log.
pub struct Stage {
    _tmp: tempfile::TempDir,
    pub certs: CertsDir,
    pub lab: CertsDir,
    pub log: Log,
}

impl Stage {
    /// Mints the demo set and the lab into a temporary folder.
    pub fn new(log: Log) -> mtls::Result<Self> {
        let tmp = tempfile::tempdir().map_err(|source| mtls::Error::Io {
            context: "creating a temporary folder for the tour".into(),
            source,
        })?;
        let certs = CertsDir::new(tmp.path().join("certs"));
        demo::mint(&DemoOptions::new(certs.clone()))?;
        lab::mint(&certs, false)?;
        let lab = certs.lab();
        Ok(Stage {
            _tmp: tmp,
            certs,
            lab,
            log,
        })
    }

    /// The demo server's settings on a free port of 127.0.0.1.
    pub fn settings(&self) -> ServerSettings {
        let mut settings = ServerSettings::in_dir(&self.certs);
        settings.addr = "127.0.0.1:0".into();
        settings
    }

    /// Starts a server with `settings`.
    pub async fn serve(&self, settings: ServerSettings) -> mtls::Result<Running> {
        let server = Server::bind(&settings).await?;
        let port = server.local_addr()?.port();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Ok(Running {
            port,
            stop: Some(stop),
        })
    }

    /// A traced call to `https://HOST:PORT/` as `who` (a demo client, a lab file's stem, or
    /// nobody), offering only `version` when given.
    pub async fn call(
        &self,
        host: &str,
        server: &Running,
        who: Who<'_>,
        version: Option<TlsVersion>,
    ) -> Result<Exchange, FetchError> {
        let identity = match who {
            Who::Demo(id) => {
                let role = Role::Client(id);
                let name = id.common_name().to_string();
                Some((self.certs.role_cert(role), self.certs.role_key(role), name))
            }
            Who::Lab(stem) => Some((self.lab.cert(stem), self.lab.key(stem), stem.to_string())),
            Who::Nobody => None,
        };
        let mut settings = ClientSettings::new(self.certs.ca_cert(), identity);
        settings.url = format!("https://{host}:{}/", server.port)
            .parse()
            .map_err(|e| FetchError {
                error: e,
                trace: None,
            })?;
        settings.policy.only_version = version;
        settings.trace = true;
        fetch_traced(&settings).await
    }
}

/// Who a call presents itself as.
#[derive(Clone, Copy)]
pub enum Who<'a> {
    Demo(ClientId),
    Lab(&'a str),
    Nobody,
}
