//! How the tour prints: chapters and steps, the wire (messages from the trace, with the
//! details each carries), what each side said, and why it matters. Colour only on a
//! terminal (and never with NO_COLOR); pauses only when a person is there to press Enter.

use std::io::{BufRead, IsTerminal, Write};

use mtls::trace::{Dir, Kind, Message, Trace};

use crate::stage::Event;

pub struct Show {
    colour: bool,
    pause: bool,
}

impl Show {
    pub fn new(no_pause: bool) -> Self {
        let terminal = std::io::stdout().is_terminal();
        Show {
            colour: terminal && std::env::var_os("NO_COLOR").is_none(),
            pause: terminal && std::io::stdin().is_terminal() && !no_pause,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        match self.colour {
            true => format!("\x1b[{code}m{text}\x1b[0m"),
            false => text.to_string(),
        }
    }

    pub fn chapter(&self, title: &str) {
        let rule = "=".repeat(title.chars().count());
        println!(
            "\n{}\n{}",
            self.paint("1;36", title),
            self.paint("36", &rule)
        );
    }

    pub fn step(&self, n: usize, title: &str) {
        println!("\n{}", self.paint("1", &format!("Step {n}. {title}")));
    }

    pub fn case(&self, title: &str) {
        println!("\n{}", self.paint("1", title));
    }

    /// A plain paragraph.
    pub fn say(&self, text: &str) {
        println!("{text}");
    }

    /// What a side said or did: `  client  ...`, `  server  ...`.
    pub fn side(&self, who: &str, text: &str) {
        let code = match who {
            "client" => "32",
            "server" => "35",
            _ => "33",
        };
        let tag = self.paint(code, &format!("{who:<6}"));
        for (i, line) in text.lines().enumerate() {
            let tag = if i == 0 { tag.as_str() } else { "      " };
            println!("  {tag} {line}");
        }
    }

    /// Why it matters.
    pub fn why(&self, text: &str) {
        println!("  {} {}", self.paint("2", "why   "), self.paint("2", text));
    }

    /// The messages of `trace` that `pick` chooses, each with its details.
    pub fn wire(&self, trace: Option<&Trace>, pick: impl Fn(Dir, &Message) -> bool) {
        let Some(trace) = trace else {
            return self.side("wire", "(no trace: the connection was not made)");
        };
        for (dir, message) in trace.messages().filter(|(d, m)| pick(*d, m)) {
            let arrow = self.paint("33", dir.arrow());
            println!(
                "  {}   {arrow} {}",
                self.paint("33", "wire"),
                message.title()
            );
            for (label, value) in &message.details {
                println!("           {label}: {value}");
            }
        }
    }

    /// The whole trace, one line per message (repeats counted), each with the step of
    /// chapter 1 it belongs to.
    pub fn whole(&self, trace: Option<&Trace>, step_of: impl Fn(Dir, &Message) -> Option<usize>) {
        let Some(trace) = trace else { return };
        let mut lines: Vec<(String, Option<usize>, usize)> = Vec::new();
        for (dir, message) in trace.messages() {
            let line = format!("{} {}", dir.arrow(), message.title());
            match lines.last_mut() {
                Some((last, _, count)) if *last == line => *count += 1,
                _ => lines.push((line, step_of(dir, message), 1)),
            }
        }
        for (line, step, count) in lines {
            let line = match count {
                1 => line,
                n => format!("{line} x{n}"),
            };
            let step = step.map(|n| format!("step {n}")).unwrap_or_default();
            println!(
                "  {}{}",
                self.paint("33", &format!("{line:<40}")),
                self.paint("2", &step)
            );
        }
    }

    /// What the server logged, with the fields worth reading.
    pub fn logged(&self, events: &[Event]) {
        if events.is_empty() {
            return self.side("server", "(logged nothing about it within two seconds)");
        }
        for e in events {
            let fields: Vec<String> = e
                .fields
                .iter()
                .filter(|(n, _)| !matches!(n.as_str(), "peer.addr" | "tls.resumed"))
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let level = e.level.to_string();
            let text = format!("{level} {}\n{}", e.message, fields.join("\n"));
            self.side("server", &text);
        }
    }

    /// Waits for Enter between chapters, when a person is watching.
    pub fn pause(&self) {
        if !self.pause {
            return;
        }
        print!(
            "\n{}",
            self.paint("2", "(press Enter for the next chapter)")
        );
        let _ = std::io::stdout().flush();
        let _ = std::io::stdin().lock().read_line(&mut String::new());
    }
}

/// The messages that make up one step of the handshake.
pub fn is(kinds: &'static [Kind], from: Dir) -> impl Fn(Dir, &Message) -> bool {
    move |dir, message| dir == from && kinds.contains(&message.kind)
}
