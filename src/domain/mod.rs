//! Validated domain types. A value of one of these types has passed every rule, so the
//! routes and clients never check it again. Types that hold personal data redact it in
//! `Debug` and offer a masked form for logs.

mod message;
mod phone;
mod sender;
mod sms;
mod validation;

pub use message::{Encoding, SmsBody, BODY_MAX_CHARS};
pub use phone::PhoneNumber;
pub use sender::Sender;
pub use sms::{DeliveryOptions, SmsRequest, SmsRequestBody, Tag, MAX_RECIPIENTS, TAG_MAX_CHARS};
pub use validation::{FieldError, FieldErrors};
