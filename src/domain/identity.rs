//! Identity requests: token scopes and lifetimes, ACS communication user ids, and the
//! exchange of a Teams user's Entra token, each validated before any ACS call.
//!
//! Communication user ids and Entra object ids are personal data and tokens are secrets:
//! `Debug` shows neither in full.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use uuid::Uuid;

use super::secret::SecretString;
use super::FieldErrors;

/// Shortest token lifetime ACS accepts, in minutes.
pub const TOKEN_MIN_MINUTES: u16 = 60;
/// Longest token lifetime ACS accepts, in minutes; also ACS's default.
pub const TOKEN_MAX_MINUTES: u16 = 1440;
/// Longest communication user id accepted.
pub const USER_ID_MAX_LEN: usize = 256;
/// Longest Teams user token accepted, in characters.
pub const TEAMS_TOKEN_MAX_LEN: usize = 12 * 1024;
/// Prefix of a communication user id in the ACS public cloud.
pub const USER_ID_PREFIX: &str = "8:acs:";

const SCOPE_RULE: &str = "must be one of chat, voip, chat.join, chat.join.limited, voip.join";
const LIFETIME_RULE: &str = "must be a whole number of minutes from 60 to 1440";
const USER_ID_RULE: &str = "must be an ACS communication user id: 8:acs:, a resource id, _ and a suffix, made of letters, digits, -, _ and :";
const GUID_RULE: &str = "must be a GUID (8-4-4-4-12 hexadecimal digits)";
const JWT_RULE: &str = "must be a JWT: three base64url segments separated by dots";

/// A scope of an ACS access token, as ACS names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenScope {
    /// `chat`: full chat access.
    Chat,
    /// `voip`: full calling access.
    Voip,
    /// `chat.join`: join chats the identity is invited to.
    ChatJoin,
    /// `chat.join.limited`: join chats, without managing participants.
    ChatJoinLimited,
    /// `voip.join`: join calls the identity is invited to.
    VoipJoin,
}

impl TokenScope {
    /// Every scope, in the order ACS documents them.
    pub const ALL: [Self; 5] = [
        Self::Chat,
        Self::Voip,
        Self::ChatJoin,
        Self::ChatJoinLimited,
        Self::VoipJoin,
    ];

    /// Parses a scope name, exactly as ACS spells it.
    ///
    /// # Errors
    /// The rule the value breaks, without the value.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw)
            .ok_or(SCOPE_RULE)
    }

    /// The name ACS uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Voip => "voip",
            Self::ChatJoin => "chat.join",
            Self::ChatJoinLimited => "chat.join.limited",
            Self::VoipJoin => "voip.join",
        }
    }
}

/// One or more distinct token scopes, in the order the caller gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScopes(Vec<TokenScope>);

impl TokenScopes {
    /// Validates a list of scope names: each known, none repeated. An empty list gives
    /// `Ok(None)`; the caller decides whether that is allowed.
    ///
    /// # Errors
    /// Every broken rule, with field paths `scopes[i]`.
    pub fn parse(raw: &[String]) -> Result<Option<Self>, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut seen = HashSet::new();
        let mut scopes = Vec::with_capacity(raw.len());
        for (index, name) in raw.iter().enumerate() {
            match TokenScope::parse(name) {
                Ok(scope) if seen.insert(scope) => scopes.push(scope),
                Ok(_) => errors.push(format!("scopes[{index}]"), "must not repeat a scope"),
                Err(rule) => errors.push(format!("scopes[{index}]"), rule),
            }
        }
        errors.finish(|| (!scopes.is_empty()).then_some(Self(scopes)))
    }

    /// The scopes, in order.
    pub fn as_slice(&self) -> &[TokenScope] {
        &self.0
    }

    /// The scope names, in order, as ACS expects them.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|scope| scope.as_str()).collect()
    }
}

/// How long an ACS access token stays valid: 60 to 1440 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetime(u16);

impl TokenLifetime {
    /// ACS's default when a request names no lifetime.
    pub const DEFAULT: Self = Self(TOKEN_MAX_MINUTES);

    /// Parses a JSON number of minutes.
    ///
    /// # Errors
    /// When the number is not whole or is outside 60..=1440.
    pub fn parse(raw: &serde_json::Number) -> Result<Self, &'static str> {
        raw.as_u64()
            .and_then(|minutes| u16::try_from(minutes).ok())
            .filter(|minutes| (TOKEN_MIN_MINUTES..=TOKEN_MAX_MINUTES).contains(minutes))
            .map(Self)
            .ok_or(LIFETIME_RULE)
    }

    /// The lifetime in minutes.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

/// The JSON body of `POST /api/identities` and `POST /api/identities/{id}/token`, before
/// validation.
///
/// Every field is optional here so that validation can report all broken rules at once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenRequestBody {
    pub scopes: Option<Vec<String>>,
    pub expires_in_minutes: Option<serde_json::Number>,
}

/// A request for an access token: at least one scope and an optional lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub scopes: TokenScopes,
    /// `None` leaves the lifetime to ACS (1440 minutes).
    pub lifetime: Option<TokenLifetime>,
}

impl TokenRequest {
    /// Validates the body of `POST /api/identities/{id}/token`: `scopes` is required and
    /// not empty.
    ///
    /// # Errors
    /// Every broken rule, with field paths relative to the body.
    pub fn parse(raw: &TokenRequestBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let scopes = match raw.scopes.as_deref() {
            None => {
                errors.push("scopes", "is required");
                None
            }
            Some(names) => parse_scopes(names, &mut errors),
        };
        if matches!(raw.scopes.as_deref(), Some([])) {
            errors.push("scopes", "must list at least one scope");
        }
        let lifetime = parse_lifetime(raw.expires_in_minutes.as_ref(), &mut errors);
        match scopes {
            Some(scopes) if errors.is_empty() => Ok(Self { scopes, lifetime }),
            _ => Err(errors),
        }
    }
}

/// A request to create an identity, and with scopes also a first access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIdentityRequest {
    /// `None`: create the identity only.
    pub token: Option<TokenRequest>,
}

impl CreateIdentityRequest {
    /// Validates the body of `POST /api/identities`.
    ///
    /// `scopes` absent, `null` or `[]` means no token; `expiresInMinutes` is then refused,
    /// because it would describe a token that is not issued.
    ///
    /// # Errors
    /// Every broken rule, with field paths relative to the body.
    pub fn parse(raw: &TokenRequestBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let scopes = raw
            .scopes
            .as_deref()
            .and_then(|names| parse_scopes(names, &mut errors));
        let lifetime = parse_lifetime(raw.expires_in_minutes.as_ref(), &mut errors);
        let no_scopes = raw.scopes.as_deref().is_none_or(<[String]>::is_empty);
        if no_scopes && raw.expires_in_minutes.is_some() {
            errors.push("expiresInMinutes", "is allowed only together with scopes");
        }
        errors.finish(|| Self {
            token: scopes.map(|scopes| TokenRequest { scopes, lifetime }),
        })
    }
}

fn parse_scopes(names: &[String], errors: &mut FieldErrors) -> Option<TokenScopes> {
    match TokenScopes::parse(names) {
        Ok(scopes) => scopes,
        Err(broken) => {
            for error in broken.into_vec() {
                errors.push(error.field, error.message);
            }
            None
        }
    }
}

fn parse_lifetime(
    raw: Option<&serde_json::Number>,
    errors: &mut FieldErrors,
) -> Option<TokenLifetime> {
    raw.and_then(|minutes| {
        TokenLifetime::parse(minutes)
            .map_err(|rule| errors.push("expiresInMinutes", rule))
            .ok()
    })
}

/// The id of an ACS communication user: `8:acs:<resource id>_<suffix>`.
///
/// Ids arrive percent-decoded from the route path. The id is personal data: `Debug` shows
/// only [`CommunicationUserId::masked`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CommunicationUserId(String);

impl CommunicationUserId {
    /// Parses an id of the public-cloud ACS form: `8:acs:`, a resource id of letters,
    /// digits and `-`, then `_` and a suffix of letters, digits, `-`, `_` and `:`.
    ///
    /// # Errors
    /// The rule the value breaks, without the value.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > USER_ID_MAX_LEN {
            return Err("must be at most 256 characters");
        }
        let Some(rest) = raw.strip_prefix(USER_ID_PREFIX) else {
            return Err(USER_ID_RULE);
        };
        let Some((resource, suffix)) = rest.split_once('_') else {
            return Err(USER_ID_RULE);
        };
        let resource_ok = !resource.is_empty()
            && resource
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let suffix_ok = !suffix.is_empty()
            && suffix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':'));
        if !(resource_ok && suffix_ok) {
            return Err(USER_ID_RULE);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The full id, for the wire only.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs: the prefix and the last four characters.
    pub fn masked(&self) -> String {
        let tail_start = self.0.len().saturating_sub(4).max(USER_ID_PREFIX.len());
        format!("{USER_ID_PREFIX}***{}", &self.0[tail_start..])
    }
}

impl fmt::Debug for CommunicationUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunicationUserId({})", self.masked())
    }
}

/// The JSON body of `POST /api/teams/token`, before validation. `Debug` shows no value.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TeamsTokenBody {
    pub token: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
}

impl fmt::Debug for TeamsTokenBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsTokenBody").finish_non_exhaustive()
    }
}

/// A Teams user's Entra access token to exchange for an ACS access token.
#[derive(Clone, PartialEq, Eq)]
pub struct TeamsTokenExchange {
    /// The Entra access token of the Teams user; a secret.
    pub token: SecretString,
    /// Client id of the Entra application the token was issued to (its `appid` claim).
    pub app_id: Uuid,
    /// Object id of the Teams user (the token's `oid` claim); personal data.
    pub user_id: Uuid,
}

impl TeamsTokenExchange {
    /// Validates the body of `POST /api/teams/token`.
    ///
    /// # Errors
    /// Every broken rule, with field paths relative to the body.
    pub fn parse(raw: &TeamsTokenBody) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let token = match raw.token.as_deref() {
            None => {
                errors.push("token", "is required");
                None
            }
            Some(token) => parse_jwt_shape(token)
                .map_err(|rule| errors.push("token", rule))
                .ok(),
        };
        let app_id = parse_guid("appId", raw.app_id.as_deref(), &mut errors);
        let user_id = parse_guid("userId", raw.user_id.as_deref(), &mut errors);
        match (token, app_id, user_id) {
            (Some(token), Some(app_id), Some(user_id)) if errors.is_empty() => Ok(Self {
                token,
                app_id,
                user_id,
            }),
            _ => Err(errors),
        }
    }
}

impl fmt::Debug for TeamsTokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsTokenExchange")
            .field("token", &self.token)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// Checks the shape of a JWT without decoding it: three non-empty base64url segments.
fn parse_jwt_shape(raw: &str) -> Result<SecretString, &'static str> {
    if raw.is_empty() {
        return Err("must not be empty");
    }
    if raw.len() > TEAMS_TOKEN_MAX_LEN {
        return Err("must be at most 12288 characters");
    }
    let segments: Vec<&str> = raw.split('.').collect();
    let base64url = |segment: &&str| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if segments.len() != 3 || !segments.iter().all(base64url) {
        return Err(JWT_RULE);
    }
    Ok(SecretString::new(raw))
}

/// Parses a GUID in its 36-character form, in either case.
fn parse_guid(field: &str, raw: Option<&str>, errors: &mut FieldErrors) -> Option<Uuid> {
    let Some(raw) = raw else {
        errors.push(field, "is required");
        return None;
    };
    let hyphens_in_place = raw.len() == 36
        && raw
            .char_indices()
            .all(|(index, c)| (c == '-') == matches!(index, 8 | 13 | 18 | 23));
    match Uuid::try_parse(raw) {
        Ok(guid) if hyphens_in_place => Some(guid),
        _ => {
            errors.push(field, GUID_RULE);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_ID: &str =
        "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_00000005-14a2-493b-8a72-5a3a0d000081";
    const APP_ID: &str = "2c3e1e83-8fd7-4615-ad2b-b8c1229845ac";
    const OBJECT_ID: &str = "32c0a5db-05ec-78ea-51ab-3f06b329397e";
    const FAKE_JWT: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJmYWtlIn0.ZmFrZS1zaWduYXR1cmU";

    fn body(value: serde_json::Value) -> TokenRequestBody {
        serde_json::from_value(value).unwrap()
    }

    fn fields(errors: &FieldErrors) -> Vec<&str> {
        errors.iter().map(|error| error.field.as_str()).collect()
    }

    #[test]
    fn every_documented_scope_round_trips() {
        for name in [
            "chat",
            "voip",
            "chat.join",
            "chat.join.limited",
            "voip.join",
        ] {
            assert_eq!(TokenScope::parse(name).unwrap().as_str(), name);
        }
        for name in [
            "",
            "Chat",
            "CHAT",
            "chat ",
            "chat.write",
            "voip.join.limited",
            "pstn",
        ] {
            assert!(TokenScope::parse(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn token_lifetimes_must_be_whole_minutes_from_60_to_1440() {
        let valid = ["60", "61", "720", "1440"];
        let invalid = [
            "59", "0", "-60", "1441", "65536", "60.5", "60.0", "1e3", "1e30",
        ];

        for raw in valid {
            let number: serde_json::Number = serde_json::from_str(raw).unwrap();
            assert_eq!(
                TokenLifetime::parse(&number).map(TokenLifetime::minutes),
                Ok(raw.parse().unwrap())
            );
        }
        for raw in invalid {
            let number: serde_json::Number = serde_json::from_str(raw).unwrap();
            assert!(TokenLifetime::parse(&number).is_err(), "{raw}");
        }
    }

    #[test]
    fn valid_token_requests_are_accepted() {
        let cases = [
            (serde_json::json!({"scopes": ["chat"]}), vec!["chat"], None),
            (
                serde_json::json!({"scopes": ["voip", "chat"], "expiresInMinutes": 60}),
                vec!["voip", "chat"],
                Some(60),
            ),
            (
                serde_json::json!({
                    "scopes": ["chat", "voip", "chat.join", "chat.join.limited", "voip.join"],
                    "expiresInMinutes": 1440
                }),
                vec![
                    "chat",
                    "voip",
                    "chat.join",
                    "chat.join.limited",
                    "voip.join",
                ],
                Some(1440),
            ),
        ];

        for (raw, scopes, minutes) in cases {
            let request = TokenRequest::parse(&body(raw.clone())).unwrap_or_else(|e| {
                panic!("{raw}: {e:?}");
            });
            assert_eq!(request.scopes.names(), scopes, "{raw}");
            assert_eq!(request.lifetime.map(TokenLifetime::minutes), minutes);
        }
    }

    #[test]
    fn invalid_token_requests_name_every_broken_field() {
        let cases = [
            (serde_json::json!({}), vec!["scopes"]),
            (serde_json::json!({"scopes": null}), vec!["scopes"]),
            (serde_json::json!({"scopes": []}), vec!["scopes"]),
            (serde_json::json!({"scopes": ["Chat"]}), vec!["scopes[0]"]),
            (
                serde_json::json!({"scopes": ["chat", "pstn", "chat"]}),
                vec!["scopes[1]", "scopes[2]"],
            ),
            (
                serde_json::json!({"scopes": ["chat"], "expiresInMinutes": 59}),
                vec!["expiresInMinutes"],
            ),
            (
                serde_json::json!({"scopes": ["chat"], "expiresInMinutes": 1441}),
                vec!["expiresInMinutes"],
            ),
            (
                serde_json::json!({"scopes": ["chat"], "expiresInMinutes": 90.5}),
                vec!["expiresInMinutes"],
            ),
            (
                serde_json::json!({"expiresInMinutes": 10}),
                vec!["scopes", "expiresInMinutes"],
            ),
        ];

        for (raw, expected) in cases {
            let errors = TokenRequest::parse(&body(raw.clone())).unwrap_err();
            assert_eq!(fields(&errors), expected, "{raw}");
        }
    }

    #[test]
    fn create_requests_without_scopes_ask_for_no_token() {
        for raw in [
            serde_json::json!({}),
            serde_json::json!({"scopes": null}),
            serde_json::json!({"scopes": []}),
        ] {
            let request = CreateIdentityRequest::parse(&body(raw.clone())).unwrap();
            assert_eq!(request.token, None, "{raw}");
        }

        let with_token = CreateIdentityRequest::parse(&body(
            serde_json::json!({"scopes": ["chat.join"], "expiresInMinutes": 120}),
        ))
        .unwrap()
        .token
        .unwrap();
        assert_eq!(with_token.scopes.names(), ["chat.join"]);
        assert_eq!(with_token.lifetime, Some(TokenLifetime(120)));
    }

    #[test]
    fn invalid_create_requests_name_every_broken_field() {
        let cases = [
            (
                serde_json::json!({"expiresInMinutes": 60}),
                vec!["expiresInMinutes"],
            ),
            (
                serde_json::json!({"scopes": [], "expiresInMinutes": 60}),
                vec!["expiresInMinutes"],
            ),
            (
                serde_json::json!({"scopes": ["voip", "voip"]}),
                vec!["scopes[1]"],
            ),
            (
                serde_json::json!({"scopes": ["chat", ""], "expiresInMinutes": 30}),
                vec!["scopes[1]", "expiresInMinutes"],
            ),
        ];

        for (raw, expected) in cases {
            let errors = CreateIdentityRequest::parse(&body(raw.clone())).unwrap_err();
            assert_eq!(fields(&errors), expected, "{raw}");
        }
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused_by_the_body_type() {
        for raw in [
            r#"{"scope": ["chat"]}"#,
            r#"{"scopes": "chat"}"#,
            r#"{"scopes": [1]}"#,
            r#"{"scopes": ["chat"], "expiresInMinutes": "60"}"#,
            r#"{"createTokenWithScopes": ["chat"]}"#,
        ] {
            assert!(
                serde_json::from_str::<TokenRequestBody>(raw).is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn valid_communication_user_ids_are_accepted() {
        for raw in [
            USER_ID,
            "8:acs:r_s",
            "8:acs:local-outbox_6f0c1b7e-8a42-4d55-9b1e-52c3a0d47e19",
            "8:acs:2dee53b4-368b-45b4-ab52-8493fb117652_0000:0005_ab",
        ] {
            let id = CommunicationUserId::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(id.as_str(), raw);
        }
        let longest = format!("8:acs:r_{}", "a".repeat(USER_ID_MAX_LEN - 8));
        assert!(CommunicationUserId::parse(&longest).is_ok());
    }

    #[test]
    fn invalid_communication_user_ids_are_refused() {
        let too_long = format!("8:acs:r_{}", "a".repeat(USER_ID_MAX_LEN - 7));
        let cases = [
            "",
            "8:acs:",
            "8:acs:_suffix",
            "8:acs:resource_",
            "8:acs:resource",
            "8:ACS:resource_suffix",
            "acs:resource_suffix",
            "8:orgid:2dee53b4-368b-45b4-ab52-8493fb117652",
            "4:+14255550123",
            " 8:acs:resource_suffix",
            "8:acs:resource_suffix ",
            "8:acs:res.ource_suffix",
            "8:acs:res:ource_suffix",
            "8:acs:resource_suf/fix",
            "8:acs:resource_suf%3Afix",
            "8:acs:resource_../../x",
            "8:acs:resource_suffix?api-version=1",
            "8:acs:résource_suffix",
            "8:acs:resource_suf\0fix",
            too_long.as_str(),
        ];

        for raw in cases {
            assert!(CommunicationUserId::parse(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn communication_user_ids_are_masked_in_debug_output() {
        let id = CommunicationUserId::parse(USER_ID).unwrap();

        let shown = format!("{id:?}");

        assert_eq!(shown, "CommunicationUserId(8:acs:***0081)");
        assert!(!shown.contains("2dee53b4"));
        let short = CommunicationUserId::parse("8:acs:r_s").unwrap();
        assert_eq!(short.masked(), "8:acs:***r_s");
    }

    fn teams(token: Option<&str>, app: Option<&str>, user: Option<&str>) -> TeamsTokenBody {
        TeamsTokenBody {
            token: token.map(str::to_owned),
            app_id: app.map(str::to_owned),
            user_id: user.map(str::to_owned),
        }
    }

    #[test]
    fn valid_teams_token_exchanges_are_accepted() {
        let upper_app = APP_ID.to_ascii_uppercase();
        let cases = [
            (FAKE_JWT, APP_ID),
            ("a.b.c", upper_app.as_str()),
            ("A-_9.b.c-_", APP_ID),
        ];

        for (token, app) in cases {
            let exchange =
                TeamsTokenExchange::parse(&teams(Some(token), Some(app), Some(OBJECT_ID)))
                    .unwrap_or_else(|e| panic!("{token}: {e:?}"));
            assert_eq!(exchange.token.expose_secret(), token);
            assert_eq!(exchange.app_id.to_string(), APP_ID);
            assert_eq!(exchange.user_id.to_string(), OBJECT_ID);
        }
    }

    #[test]
    fn invalid_teams_token_exchanges_name_every_broken_field() {
        let long = format!("a.b.{}", "c".repeat(TEAMS_TOKEN_MAX_LEN));
        let braced = format!("{{{APP_ID}}}");
        let simple = APP_ID.replace('-', "");
        let cases: Vec<(TeamsTokenBody, Vec<&str>)> = vec![
            (teams(None, None, None), vec!["token", "appId", "userId"]),
            (
                teams(Some(""), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some("a.b"), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some("a.b.c.d"), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some("a..c"), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some("a.b.c="), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some("a.b+/.c"), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some("Bearer a.b.c"), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some(&long), Some(APP_ID), Some(OBJECT_ID)),
                vec!["token"],
            ),
            (
                teams(Some(FAKE_JWT), Some(""), Some(OBJECT_ID)),
                vec!["appId"],
            ),
            (
                teams(Some(FAKE_JWT), Some("not-a-guid"), Some(OBJECT_ID)),
                vec!["appId"],
            ),
            (
                teams(Some(FAKE_JWT), Some(&braced), Some(OBJECT_ID)),
                vec!["appId"],
            ),
            (
                teams(Some(FAKE_JWT), Some(&simple), Some(OBJECT_ID)),
                vec!["appId"],
            ),
            (
                teams(
                    Some(FAKE_JWT),
                    Some(APP_ID),
                    Some("32c0a5db-05ec-78ea-51ab-3f06b329397"),
                ),
                vec!["userId"],
            ),
            (teams(Some(FAKE_JWT), Some(APP_ID), None), vec!["userId"]),
        ];

        for (raw, expected) in cases {
            let errors = TeamsTokenExchange::parse(&raw).unwrap_err();
            assert_eq!(fields(&errors), expected);
            for error in errors.iter() {
                assert!(!error.message.contains(FAKE_JWT));
            }
        }
    }

    #[test]
    fn teams_exchanges_hide_the_token_and_user_in_debug_output() {
        let exchange =
            TeamsTokenExchange::parse(&teams(Some(FAKE_JWT), Some(APP_ID), Some(OBJECT_ID)))
                .unwrap();
        let body = teams(Some(FAKE_JWT), Some(APP_ID), Some(OBJECT_ID));

        let shown = format!("{exchange:?} {body:?}");

        assert!(!shown.contains("eyJ"), "{shown}");
        assert!(!shown.contains(OBJECT_ID), "{shown}");
    }
}
