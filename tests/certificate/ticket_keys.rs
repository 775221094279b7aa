//! `certificate ticket-keys`: the session-ticket key file a fleet of servers shares,
//! written secret, rotated with the newest key in front, never replaced silently. Each key
//! is checked with openssl's base64 decoder, not our own reader.

use testkit::{openssl_ok, utf8 as s};

use crate::folder::Folder;

/// The key lines of the file, in order.
fn keys(f: &Folder) -> Vec<String> {
    std::fs::read_to_string(f.dir.join("ticket.keys"))
        .expect("read the key file")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn ticket_keys_writes_a_secret_file_rotates_it_and_never_overwrites_it_silently() {
    let f = Folder::new(&[]);
    let out = f.ok(&["ticket-keys"]);
    assert!(
        out.contains("ticket.keys (mode 0600): 1 session-ticket key,"),
        "{out}"
    );
    assert!(out.contains("new: encrypts new tickets"), "{out}");
    assert!(out.contains("--ticket-keys"), "{out}");
    let path = f.dir.join("ticket.keys");
    assert_eq!(mtls::perms::mode(&path).expect("mode"), 0o600);
    let first = keys(&f);
    assert_eq!(first.len(), 1);
    // 16 bytes of name and 32 of key, as openssl decodes the line.
    let line = f.dir.join("line.b64");
    std::fs::write(&line, format!("{}\n", first[0])).expect("write");
    let decoded = f.dir.join("line.bin");
    openssl_ok(&["base64", "-d", "-in", s(&line), "-out", s(&decoded)]);
    assert_eq!(std::fs::metadata(&decoded).expect("decoded").len(), 48);

    let err = f.fails(&["ticket-keys"]);
    assert!(err.contains("ticket.keys already exists"), "{err}");
    assert!(err.contains("--rotate"), "{err}");
    assert_eq!(keys(&f), first, "nothing changed");

    let out = f.ok(&["ticket-keys", "--rotate"]);
    assert!(out.contains("2 session-ticket keys"), "{out}");
    assert!(out.contains("decrypts tickets made before"), "{out}");
    let rotated = keys(&f);
    assert_eq!(rotated.len(), 2);
    assert_eq!(
        rotated[1], first[0],
        "the old key stays, behind the new one"
    );

    let out = f.ok(&["ticket-keys", "--keep", "1"]);
    assert!(out.contains("Dropped 1 key"), "{out}");
    assert_eq!(keys(&f), vec![rotated[0].clone()]);
    assert_eq!(mtls::perms::mode(&path).expect("mode"), 0o600);

    let usage = f.cmd(&["ticket-keys", "--force", "--rotate"]);
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--force starts over; it cannot rotate"
    );
    assert!(f.leftovers().is_empty(), "{:?}", f.leftovers());
}
