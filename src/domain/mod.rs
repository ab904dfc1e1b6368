//! Validated domain types. A value of one of these types has passed every rule, so the
//! routes and clients never check it again. Types that hold personal data redact it in
//! `Debug` and offer a masked form for logs.

mod batch;
mod identity;
mod message;
mod phone;
mod secret;
mod sender;
mod sms;
mod validation;

pub use batch::{
    Batch, BatchRequestBody, QueueMessage, QueuePart, BATCH_MAX_RECIPIENTS, PART_MAX_RECIPIENTS,
};
pub use identity::{
    CommunicationUserId, CreateIdentityRequest, TeamsTokenBody, TeamsTokenExchange, TokenLifetime,
    TokenRequest, TokenRequestBody, TokenScope, TokenScopes, TEAMS_TOKEN_MAX_LEN,
    TOKEN_MAX_MINUTES, TOKEN_MIN_MINUTES, USER_ID_MAX_LEN,
};
pub use message::{Encoding, SmsBody, BODY_MAX_CHARS};
pub use phone::PhoneNumber;
pub use secret::SecretString;
pub use sender::Sender;
pub use sms::{
    DeliveryOptions, OneOrMany, SmsRequest, SmsRequestBody, Tag, MAX_RECIPIENTS, TAG_MAX_CHARS,
};
pub use validation::{FieldError, FieldErrors, JsonObject};
