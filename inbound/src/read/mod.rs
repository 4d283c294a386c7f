//! Reading a received message: what it is, who it claims to be from, what may be
//! relayed of it, and whether its sender is who it claims to be.
//!
//! - [`message`]: the parts of a message the router needs (sender, thread, kind,
//!   content), read with mail-parser; [`headers`] it reads them from.
//! - [`classify`]: a member's reply, an auto-reply, a delivery report or a complaint.
//! - [`mime`]: the received MIME tree reduced to what may be relayed; [`charset`]:
//!   bytes read as text by content, not only by label; [`signed`]: signatures and
//!   keys dropped, opaque-signed mail unwrapped, encrypted mail recognised; [`ber`]:
//!   BER rewritten as DER, for CMS from streaming signers.
//! - [`bounce`]: reading bounces (RFC 3464 and prose): status, reason, hard or soft.
//! - [`authenticate`]: SPF, DKIM and DMARC for the `From:` domain.

pub mod authenticate;
pub mod ber;
pub mod bounce;
pub mod charset;
pub mod classify;
pub mod headers;
pub mod message;
pub mod mime;
pub mod signed;
