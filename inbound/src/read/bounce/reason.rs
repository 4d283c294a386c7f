//! The reasons a delivery bounces, sisimai's names for them, which are hard, and the
//! phrases and status codes that give each away.

use maskrelay_schema::BounceSeverity;

/// Why a delivery bounced (sisimai's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No such recipient.
    UserUnknown,
    /// No such domain.
    HostUnknown,
    /// The domain accepts no mail (null MX).
    NotAccept,
    /// The recipient has moved and left no forwarding.
    HasMoved,
    /// The mailbox is full.
    MailboxFull,
    /// The mailbox is disabled or suspended.
    Suspend,
    /// The message is too big.
    MesgTooBig,
    /// Refused as spam.
    SpamDetected,
    /// Refused for a virus.
    VirusDetected,
    /// The sender failed SPF, DKIM or DMARC there.
    AuthFailure,
    /// The sending address has no reverse DNS, or a bad one.
    RequirePtr,
    /// Refused because of the sending host's reputation or a block list.
    Blocked,
    /// Refused by a policy of the receiving site.
    PolicyViolation,
    /// Refused by a filter of the recipient.
    Filtered,
    /// Too many connections or messages: rate limited.
    TooManyConn,
    /// The receiving system had a problem.
    SystemError,
    /// Could not connect, or the connection broke.
    NetworkError,
    /// Retried until the sending MTA gave up.
    Expired,
    /// The sender was refused.
    Rejected,
    /// Some other reason.
    Undefined,
}

impl Reason {
    /// The name recorded and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UserUnknown => "userunknown",
            Reason::HostUnknown => "hostunknown",
            Reason::NotAccept => "notaccept",
            Reason::HasMoved => "hasmoved",
            Reason::MailboxFull => "mailboxfull",
            Reason::Suspend => "suspend",
            Reason::MesgTooBig => "mesgtoobig",
            Reason::SpamDetected => "spamdetected",
            Reason::VirusDetected => "virusdetected",
            Reason::AuthFailure => "authfailure",
            Reason::RequirePtr => "requireptr",
            Reason::Blocked => "blocked",
            Reason::PolicyViolation => "policyviolation",
            Reason::Filtered => "filtered",
            Reason::TooManyConn => "toomanyconn",
            Reason::SystemError => "systemerror",
            Reason::NetworkError => "networkerror",
            Reason::Expired => "expired",
            Reason::Rejected => "rejected",
            Reason::Undefined => "undefined",
        }
    }

    /// Hard or soft, as sisimai counts them.
    pub fn severity(self) -> BounceSeverity {
        match self {
            Reason::UserUnknown | Reason::HostUnknown | Reason::NotAccept | Reason::HasMoved => {
                BounceSeverity::Hard
            }
            _ => BounceSeverity::Soft,
        }
    }
}

/// Phrases, lower case, and the reason each gives away; the first table that matches
/// wins, so the reasons that make a bounce hard come first.
pub(super) const PHRASES: &[(Reason, &[&str])] = &[
    (
        Reason::NotAccept,
        &[
            "null mx",
            "does not accept mail",
            "not accept any mail",
            "domain does not accept",
            "nullmx",
        ],
    ),
    (
        Reason::HasMoved,
        &[
            "has moved",
            "address has changed",
            "no longer at this address",
            "is no longer valid",
            "moved to",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "host unknown",
            "unknown host",
            "host not found",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "domain name not found",
            "host or domain name not found",
            "unrouteable mail domain",
            "unrouteable domain",
            "name or service not known",
            "nxdomain",
            "unknown domain",
            "domain is not valid",
            "no mx record",
            "no valid mx",
            "illegal host/domain",
            "bad destination host",
            "invalid domain",
            "domain lookup failed",
        ],
    ),
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded storage",
            "exceeds the storage",
            "insufficient storage",
            "mailbox size limit",
            "out of storage",
            "too much mail",
            "full mailbox",
            "mail box full",
            "has exceeded",
        ],
    ),
    (
        Reason::Suspend,
        &[
            "suspended",
            "disabled",
            "inactive",
            "deactivated",
            "account has been closed",
            "account is locked",
            "temporarily unavailable",
            "expired account",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "user not found",
            "user doesn't exist",
            "user does not exist",
            "unknown recipient",
            "no such recipient",
            "recipient not found",
            "recipient unknown",
            "recipient does not exist",
            "invalid recipient",
            "mailbox not found",
            "mailbox does not exist",
            "no such mailbox",
            "no mailbox",
            "invalid mailbox",
            "not a valid mailbox",
            "account does not exist",
            "no such account",
            "account unknown",
            "addressee unknown",
            "address unknown",
            "address does not exist",
            "unknown address",
            "unrouteable address",
            "no such address",
            "bad destination mailbox",
            "is not a valid user",
            "not our customer",
            "does not have an account",
            "email account that you tried to reach does not exist",
            "unknown local part",
            "undeliverable address",
            "unknown or illegal alias",
            "no valid recipients",
            "this user doesn't have",
            "doesn't have a yahoo",
            "user invalid",
            "destination address does not exist",
            "no such person",
            "recipient name is not recognized",
            "address not found",
            "address couldn't be found",
            "invalid final delivery userid",
        ],
    ),
    (
        Reason::MesgTooBig,
        &[
            "message too large",
            "message is too large",
            "message size exceeds",
            "too big",
            "exceeds size limit",
            "size limit",
            "message too big",
        ],
    ),
    (Reason::VirusDetected, &["virus", "malware", "infected"]),
    (
        Reason::SpamDetected,
        &[
            "spam",
            "junk mail",
            "unsolicited",
            "bulk mail",
            "content rejected",
        ],
    ),
    (
        Reason::AuthFailure,
        &[
            "spf",
            "dkim",
            "dmarc",
            "not authenticated",
            "authentication required",
            "unauthenticated",
        ],
    ),
    (
        Reason::RequirePtr,
        &[
            "reverse dns",
            "ptr record",
            "reverse lookup",
            "no ptr",
            "rdns",
            "reverse-dns",
            "cannot resolve your address",
            "cannot find your hostname",
        ],
    ),
    (
        Reason::Blocked,
        &[
            "blocked",
            "blacklist",
            "blocklist",
            "block list",
            "black list",
            "denylist",
            "rbl",
            "spamhaus",
            "reputation",
            "poor reputation",
            "listed at",
            "listed in",
        ],
    ),
    (
        Reason::TooManyConn,
        &[
            "too many connections",
            "too many messages",
            "rate limit",
            "rate-limit",
            "throttl",
            "try again later",
        ],
    ),
    (
        Reason::Filtered,
        &[
            "filtered",
            "filter",
            "rejected by recipient",
            "not authorized",
        ],
    ),
    (
        Reason::Expired,
        &[
            "delivery time expired",
            "retry time",
            "retry timeout",
            "message expired",
            "could not be delivered for",
            "was not delivered within",
            "delivery attempts will continue",
            "have been unable to deliver",
            "timeout",
            "timed out",
            "expired",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "connection refused",
            "connection reset",
            "connection timed out",
            "network error",
            "no route to host",
            "lost connection",
            "could not connect",
            "unable to connect",
        ],
    ),
    (
        Reason::PolicyViolation,
        &["policy", "not permitted", "prohibited", "not allowed"],
    ),
    (
        Reason::SystemError,
        &[
            "system error",
            "internal error",
            "server error",
            "local error",
            "mail loop",
            "loops back",
            "too many hops",
        ],
    ),
    (
        Reason::Rejected,
        &["sender address rejected", "sender rejected", "rejected"],
    ),
];

/// Phrases that place a refusal after the message data was sent.
pub(super) const AFTER_DATA: &[&str] = &[
    "end of data",
    "in reply to data",
    "after data",
    "after end of",
    "data command",
    // Sendmail's and others' session transcripts: the refusal follows `>>> DATA`.
    ">>> data",
    "\ndata\n",
];

/// Phrases by which a receiver says, even after DATA, that the account does not exist
/// (Yahoo and La Poste refuse unknown users only then); a plain "user unknown" after
/// DATA is a filter's word.
pub(super) const NO_ACCOUNT: &[&str] = &[
    "doesn't have a",
    "does not have a",
    "invalid recipient",
    "no such user",
    "does not exist",
];

/// Phrases that place a refusal at `RCPT TO`, where "user unknown" means what it says.
pub(super) const AT_RCPT: &[&str] = &["rcpt to", "rcpt command", "after rcpt"];

/// What a status code alone says, when no phrase did.
pub(super) fn by_status(status: &str) -> Option<Reason> {
    let mut parts = status.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    Some(match (class, subject, detail) {
        ("5", "1", "1") => Reason::UserUnknown,
        ("5", "1", "2") => Reason::HostUnknown,
        ("5", "1", "10") => Reason::NotAccept,
        ("5", "1", "6") => Reason::HasMoved,
        (_, "2", "2") => Reason::MailboxFull,
        (_, "2", "1") => Reason::Suspend,
        (_, "3", "4") | (_, "2", "3") => Reason::MesgTooBig,
        (_, "4", "7") => Reason::Expired,
        (_, "4", "1") | (_, "4", "2") => Reason::NetworkError,
        (_, "4", "4") => Reason::HostUnknown,
        (_, "7", "25") => Reason::RequirePtr,
        (_, "7", "1") => Reason::Rejected,
        (_, "7", "26") | (_, "7", "23") | (_, "7", "27") => Reason::AuthFailure,
        (_, "7", _) => Reason::PolicyViolation,
        (_, "3", _) => Reason::SystemError,
        _ => return None,
    })
}
