//! A plain-HTTP application for the proxy tests: it answers every request with 200 and the
//! request head and body it got.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};

use crate::process::PATIENCE;

/// What the echo upstream received.
#[derive(Clone, Debug)]
pub struct Received {
    pub head: String,
    pub body: String,
}

impl Received {
    /// Every value of `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.head
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }
}

/// A plain-HTTP application for the proxy tests: answers every request with 200 and the
/// request head and body it got. With a gate, each request for a path under `/hold/` waits
/// until the test releases it.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    gate: Option<mpsc::Sender<()>>,
}

impl EchoUpstream {
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// Each request under `/hold/` waits for one [`EchoUpstream::release`].
    pub fn gated() -> Self {
        let (tx, rx) = mpsc::channel();
        Self::spawn(Some((tx, rx)))
    }

    fn spawn(gate: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (sender, gate_rx) = match gate {
            Some((tx, rx)) => (Some(tx), Some(Arc::new(Mutex::new(rx)))),
            None => (None, None),
        };
        let seen = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1000) {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                let gate = gate_rx.clone();
                std::thread::spawn(move || serve_echo(stream, &seen, gate.as_deref()));
            }
        });
        Self {
            addr,
            received,
            gate: sender,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets one held request be answered.
    pub fn release(&self) {
        if let Some(g) = &self.gate {
            let _ = g.send(());
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

fn serve_echo(
    stream: TcpStream,
    seen: &Mutex<Vec<Received>>,
    gate: Option<&Mutex<mpsc::Receiver<()>>>,
) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // Keep-alive: serve requests until the proxy closes the connection.
    for _ in 0..100 {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let got = Received {
            head: head.trim_end().to_string(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        seen.lock().expect("lock").push(got.clone());
        if let Some(gate) = gate
            && got.head.starts_with("GET /hold/")
        {
            let _ = gate.lock().expect("lock").recv_timeout(PATIENCE);
        }
        let text = format!("{}\r\n\r\n{}", got.head, got.body);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Upstream: echo\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// An application that answers every request with a chunked body, one piece (`piece N\n`)
/// every `every`: `pieces` of them, then the end of the body, or, when `stops`, nothing
/// more (it holds the connection open, at most [`PATIENCE`], as a stuck application does).
pub struct TrickleUpstream {
    pub addr: SocketAddr,
}

impl TrickleUpstream {
    pub fn start(pieces: usize, every: std::time::Duration, stops: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(100) {
                let Ok(stream) = stream else { continue };
                std::thread::spawn(move || trickle(stream, pieces, every, stops));
            }
        });
        Self { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn trickle(stream: TcpStream, pieces: usize, every: std::time::Duration, stops: bool) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    for _ in 0..100 {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line != "\r\n" => {}
            _ => break,
        }
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
                Connection: close\r\n\r\n";
    if writer.write_all(head.as_bytes()).is_err() {
        return;
    }
    for i in 1..=pieces {
        std::thread::sleep(every);
        let piece = format!("piece {i}\n");
        let chunk = format!("{:x}\r\n{piece}\r\n", piece.len());
        if writer.write_all(chunk.as_bytes()).is_err() {
            return;
        }
    }
    if stops {
        // Stuck: the proxy gives up first; then the read ends (or PATIENCE passes).
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    } else {
        let _ = writer.write_all(b"0\r\n\r\n");
    }
}
