//! Every SMTP reply the listener sends: code, enhanced status code and a sentence a
//! person can act on. Handlers pick from here; no reply text lives elsewhere.

use std::borrow::Cow;

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Basic status code (RFC 5321).
    pub code: u16,
    /// Enhanced status code (RFC 3463), e.g. `"5.1.1"`.
    pub status: &'static str,
    /// Human-readable text.
    pub text: Cow<'static, str>,
}

const fn reply(code: u16, status: &'static str, text: &'static str) -> Reply {
    Reply {
        code,
        status,
        text: Cow::Borrowed(text),
    }
}

impl Reply {
    /// Writes the reply as one line, `CODE STATUS TEXT\r\n`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let line = if self.status.is_empty() {
            format!("{} {}\r\n", self.code, self.text)
        } else {
            format!("{} {} {}\r\n", self.code, self.status, self.text)
        };
        out.extend_from_slice(line.as_bytes());
    }

    /// True for 4xx and 5xx replies.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }
}

// Session
pub const CLOSING: Reply = reply(221, "2.0.0", "Bye");
pub const SHUTTING_DOWN: Reply =
    reply(421, "4.3.0", "Server shutting down, please try again later");
pub const BUSY: Reply = reply(421, "4.3.2", "Too many connections, please try again later");
pub const BUSY_FROM_HERE: Reply = reply(
    421,
    "4.7.0",
    "Too many connections from your address, please try again later",
);
pub const TOO_MANY_COMMANDS: Reply = reply(
    421,
    "4.7.0",
    "Too many commands in one session, closing connection",
);
pub const RECLAIMED: Reply = reply(
    421,
    "4.3.2",
    "Server busy and this connection idle, closing it; please try again",
);
pub const TIMEOUT: Reply = reply(421, "4.4.2", "Idle for too long, closing connection");
pub const SESSION_TOO_LONG: Reply =
    reply(421, "4.4.2", "Session lasted too long, closing connection");
pub const TOO_MANY_ERRORS: Reply = reply(421, "4.7.0", "Too many errors, closing connection");
pub const OK: Reply = reply(250, "2.0.0", "OK");
pub const START_TLS: Reply = reply(220, "2.0.0", "Ready to start TLS");
pub const TLS_ACTIVE: Reply = reply(503, "5.5.1", "TLS is already active");
pub const RESET: Reply = reply(250, "2.0.0", "Transaction reset");

// Commands and their order
pub const UNKNOWN_COMMAND: Reply = reply(500, "5.5.1", "Command not recognised");
pub const LINE_TOO_LONG: Reply = reply(500, "5.5.2", "Line too long");
pub const NOT_IMPLEMENTED: Reply = reply(502, "5.5.1", "Command not implemented");
pub const HELO_FIRST: Reply = reply(503, "5.5.1", "Say EHLO or HELO first");
pub const NESTED_MAIL: Reply = reply(
    503,
    "5.5.1",
    "Sender already given; send RSET to start over",
);
pub const MAIL_FIRST: Reply = reply(503, "5.5.1", "Send MAIL FROM first");
pub const RCPT_FIRST: Reply = reply(503, "5.5.1", "Send RCPT TO before DATA");
pub const NO_VALID_RECIPIENTS: Reply = reply(554, "5.5.1", "No valid recipients");
pub const CANNOT_VERIFY: Reply = reply(
    252,
    "2.5.0",
    "Cannot verify addresses; send the message and we will try",
);
pub const HELP: Reply = reply(
    214,
    "2.0.0",
    "maskrelay accepts replies to relay addresses; see RFC 5321 for commands",
);
pub const BAD_SENDER_SYNTAX: Reply = reply(501, "5.1.7", "Invalid sender address");
pub const BAD_RECIPIENT_SYNTAX: Reply = reply(501, "5.1.3", "Invalid recipient address");

// Envelope
pub const SENDER_OK: Reply = reply(250, "2.1.0", "Sender OK");
pub const RECIPIENT_OK: Reply = reply(250, "2.1.5", "Recipient OK");
pub const NO_SUCH_ADDRESS: Reply = reply(550, "5.1.1", "No such relay address here");
pub const RELAY_DENIED: Reply = reply(
    550,
    "5.7.1",
    "Relaying denied: this server only accepts mail for its relay addresses",
);
pub const TOO_MANY_RECIPIENTS: Reply = reply(452, "4.5.3", "Too many recipients for one message");
pub const MESSAGE_TOO_BIG: Reply = reply(552, "5.3.4", "Message too big");

// Data
pub const START_DATA: Reply = reply(354, "", "Start mail input; end with <CRLF>.<CRLF>");
pub const ACCEPTED: Reply = reply(250, "2.0.0", "Message accepted for delivery");
pub const RECORDED_NOT_RELAYED: Reply = reply(
    250,
    "2.0.0",
    "Automatic message received and recorded; it is not passed on to the member",
);
pub const OWN_ADDRESS: Reply = reply(
    550,
    "5.7.1",
    "That relay address stands for you; write to the address of the member you are answering",
);
pub const SENDER_NOT_PROVEN: Reply = reply(
    550,
    "5.7.26",
    "This relay address only accepts replies from the member it was sent to, and your mail \
     system did not prove (by SPF, DKIM or DMARC) that this message comes from your address",
);
pub const SENDER_UNAUTHENTICATED: Reply = reply(
    550,
    "5.7.26",
    "Your domain publishes no SPF record and the message has no DKIM signature, so it cannot \
     be proven to come from you; this organisation requires that proof",
);
pub const AUTH_TEMPORARY: Reply = reply(
    451,
    "4.7.5",
    "Your domain's SPF, DKIM or DMARC records could not be looked up; please try again later",
);
pub const MESSAGING_DISABLED: Reply = reply(
    550,
    "5.7.1",
    "The organisation has turned off messages between its members, so this reply was not \
     delivered",
);
pub const READER_OPTED_OUT: Reply = reply(
    550,
    "5.7.1",
    "This member no longer accepts messages from other members; your reply was not delivered",
);
pub const WRITER_INACTIVE: Reply = reply(
    550,
    "5.7.1",
    "Your membership of this organisation is not active, so your reply was not delivered; \
     the organisation can reactivate it",
);
pub const READER_INACTIVE: Reply = reply(
    550,
    "5.7.1",
    "The member you are answering is no longer an active member of the organisation, so \
     your reply was not delivered",
);
pub const READER_UNREACHABLE: Reply = reply(
    550,
    "5.7.1",
    "Sorry, the member you are answering cannot receive mail at the moment, so your reply \
     was not delivered",
);
pub const UNSUBSCRIBED: Reply = reply(250, "2.0.0", "You are unsubscribed; thank you");
pub const ALONE: Reply = reply(
    550,
    "5.5.4",
    "Send an unsubscribe request or an answer to the organisation on its own, not with \
     mail for other addresses",
);
pub const BROADCAST_ANSWERED: Reply = reply(
    250,
    "2.0.0",
    "Received, but this address takes no replies: nothing was passed on, and you have \
     been told how to reach the organisation",
);
pub const BROADCAST_WRONG_SENDER: Reply = reply(
    550,
    "5.7.1",
    "This address only takes answers from members who received the organisation's message",
);
pub const UNSUBSCRIBE_UNKNOWN: Reply = reply(
    550,
    "5.7.1",
    "This unsubscribe request names no list of ours; use the unsubscribe link of the \
     message you received",
);
pub const UNSUBSCRIBE_WRONG_SENDER: Reply = reply(
    550,
    "5.7.1",
    "An unsubscribe request must come from the address the message was sent to",
);
pub const BOUNCE_RECORDED: Reply = reply(250, "2.0.0", "Delivery report recorded, thank you");
pub const UNREADABLE_FROM: Reply = reply(
    550,
    "5.1.7",
    "The From: header of this message holds no address that can be read; send it again \
     with your address in From:, e.g. From: \"Smith, Bob\" <bob@example.com>",
);
pub const ENCRYPTED: Reply = reply(
    550,
    "5.7.5",
    "Encrypted mail cannot be relayed: the relay must read a message to keep both members' \
     addresses private; please send it again without encryption",
);
pub const SIGNED_UNREADABLE: Reply = reply(
    550,
    "5.6.0",
    "This signed message could not be unpacked; please send it again without a digital \
     signature (or with a detached signature)",
);
pub const NOT_DELIVERABLE: Reply = reply(550, "5.7.1", "Your message could not be delivered");
pub const LOOP: Reply = reply(
    554,
    "5.4.6",
    "Mail loop: this message has already passed through this relay (or too many others)",
);
pub const UNPARSEABLE: Reply = reply(554, "5.6.0", "The message could not be parsed");
pub const WRONG_SENDER: Reply = reply(
    550,
    "5.7.1",
    "This relay address only accepts replies from the member it was sent to",
);
pub const RECIPIENT_GONE: Reply = reply(
    550,
    "5.1.1",
    "The member behind this relay address can no longer be reached",
);
pub const TRY_LATER: Reply = reply(
    451,
    "4.3.0",
    "Temporary problem storing the message, please try again later",
);

/// `501` naming the syntax the client should have used.
pub fn syntax(expected: &'static str) -> Reply {
    Reply {
        code: 501,
        status: "5.5.2",
        text: Cow::Owned(format!("Syntax: {expected}")),
    }
}

/// `501` for a malformed parameter.
pub fn bad_parameter(param: &str) -> Reply {
    Reply {
        code: 501,
        status: "5.5.4",
        text: Cow::Owned(format!("Invalid value for parameter {param}")),
    }
}

/// `555` for a parameter we do not support (RFC 5321 4.1.1.11).
pub fn unsupported_parameter(param: &str) -> Reply {
    Reply {
        code: 555,
        status: "5.5.4",
        text: Cow::Owned(format!("Parameter {param} is not supported")),
    }
}

/// The greeting, naming our host.
pub fn greeting(hostname: &str) -> Reply {
    Reply {
        code: 220,
        status: "",
        text: Cow::Owned(format!("{hostname} ESMTP maskrelay")),
    }
}

/// Answer to HELO.
pub fn helo(hostname: &str) -> Reply {
    Reply {
        code: 250,
        status: "",
        text: Cow::Owned(hostname.to_owned()),
    }
}

/// The multi-line answer to EHLO with our extensions.
pub fn ehlo(hostname: &str, max_message_size: usize, starttls: bool, out: &mut Vec<u8>) {
    let mut lines = vec![
        hostname.to_owned(),
        "PIPELINING".to_owned(),
        format!("SIZE {max_message_size}"),
        "8BITMIME".to_owned(),
        "SMTPUTF8".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
    ];
    if starttls {
        lines.push("STARTTLS".to_owned());
    }
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        let sep = if i == last { ' ' } else { '-' };
        out.extend_from_slice(format!("250{sep}{line}\r\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_single_crlf_terminated_lines() {
        let mut out = Vec::new();
        NO_SUCH_ADDRESS.write_to(&mut out);
        assert_eq!(out, b"550 5.1.1 No such relay address here\r\n");
    }

    #[test]
    fn ehlo_ends_with_a_space_separated_last_line() {
        let mut out = Vec::new();
        ehlo("relay.test", 1000, true, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("250-relay.test\r\n"), "{text}");
        assert!(text.contains("250-SIZE 1000\r\n"), "{text}");
        assert!(text.contains("250-ENHANCEDSTATUSCODES\r\n"), "{text}");
        assert!(text.ends_with("250 STARTTLS\r\n"), "{text}");
        let mut out = Vec::new();
        ehlo("relay.test", 1000, false, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.ends_with("250 ENHANCEDSTATUSCODES\r\n"), "{text}");
    }

    #[test]
    fn replies_without_status_have_no_double_space() {
        let mut out = Vec::new();
        greeting("h").write_to(&mut out);
        assert_eq!(out, b"220 h ESMTP maskrelay\r\n");
    }
}
