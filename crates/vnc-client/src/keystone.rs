//! Keystone password authentication for the config API, as a Contrail
//! cluster with `auth = keystone` wants it: a token fetched with the user's
//! password, cached until shortly before it expires, fetched again when the
//! config API answers 401 (revoked, or Keystone restarted).
//!
//! Identity API v3 (`POST <auth-url>/auth/tokens`, password method,
//! project-scoped; the token comes in the `X-Subject-Token` header, its
//! expiry in `token.expires_at`) and, for older clusters whose
//! `auth_url` ends in `/v2.0` (as upstream's Windows driver's sample
//! configuration did), v2.0 (`POST <auth-url>/tokens`,
//! `access.token.id` / `expires`). The options are upstream's
//! (`OS_AUTH_URL`, `OS_USERNAME`, `OS_PASSWORD`, `OS_TENANT_NAME` /
//! project, domain); see the driver's command line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Method, Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HyperClient};
use serde_json::{json, Value};

use crate::Error;

/// A token is fetched again this long before it expires.
const MARGIN: Duration = Duration::from_secs(60);

/// What Keystone needs to hand out a token.
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoneConfig {
    /// `http://keystone:5000/v3` (a URL without a version means v3; one
    /// ending in `/v2.0` uses the v2.0 API).
    pub auth_url: String,
    pub username: String,
    pub password: String,
    /// The project (tenant) to scope the token to; empty: unscoped.
    pub project: String,
    /// The domain of the user and of the project (v3), by name.
    pub user_domain: String,
    pub project_domain: String,
}

impl std::fmt::Debug for KeystoneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoneConfig")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("project", &self.project)
            .field("user_domain", &self.user_domain)
            .field("project_domain", &self.project_domain)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V3,
    V2,
}

#[derive(Clone, Debug)]
struct Cached {
    token: String,
    expires: Option<SystemTime>,
}

/// A Keystone session: the token cache and how to refill it.
pub struct Keystone {
    cfg: KeystoneConfig,
    url: String,
    version: Version,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    cached: tokio::sync::Mutex<Option<Cached>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Keystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystone")
            .field("url", &self.url)
            .field("version", &self.version)
            .finish()
    }
}

impl Keystone {
    pub fn new(
        cfg: KeystoneConfig,
        http: HyperClient<HttpConnector, Full<Bytes>>,
    ) -> Result<Keystone, Error> {
        let base = cfg.auth_url.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().map_err(|_| Error::BadUrl(base.clone()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            // TLS would need a connector this crate does not pull in.
            return Err(Error::BadUrl(base));
        }
        if cfg.username.is_empty() {
            return Err(Error::Auth {
                url: base,
                status: None,
                message: "no user name (--os-username / OS_USERNAME)".into(),
            });
        }
        let (url, version) = if base.ends_with("/v2.0") {
            (format!("{base}/tokens"), Version::V2)
        } else if base.ends_with("/v3") {
            (format!("{base}/auth/tokens"), Version::V3)
        } else {
            (format!("{base}/v3/auth/tokens"), Version::V3)
        };
        Ok(Keystone {
            cfg,
            url,
            version,
            http,
            cached: tokio::sync::Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many tokens were fetched so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid token: the cached one, or a new one when there is none or
    /// it expires within a minute. Concurrent callers share one fetch.
    pub async fn token(&self, timeout: Duration) -> Result<String, Error> {
        let mut g = self.cached.lock().await;
        if let Some(c) = g.as_ref() {
            let fresh = c.expires.is_none_or(|e| e > SystemTime::now() + MARGIN);
            if fresh {
                return Ok(c.token.clone());
            }
        }
        let c = tokio::time::timeout(timeout, self.fetch())
            .await
            .map_err(|_| Error::Timeout(self.url.clone()))??;
        let t = c.token.clone();
        *g = Some(c);
        Ok(t)
    }

    /// Drops `stale` from the cache (the config API refused it), unless a
    /// newer token replaced it meanwhile.
    pub async fn invalidate(&self, stale: &str) {
        let mut g = self.cached.lock().await;
        if g.as_ref().is_some_and(|c| c.token == stale) {
            *g = None;
        }
    }

    fn body(&self) -> Value {
        let c = &self.cfg;
        match self.version {
            Version::V3 => {
                let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
                    "name": c.username,
                    "domain": {"name": c.user_domain},
                    "password": c.password,
                }}}});
                if !c.project.is_empty() {
                    auth["scope"] = json!({"project": {
                        "name": c.project,
                        "domain": {"name": c.project_domain},
                    }});
                }
                json!({ "auth": auth })
            }
            Version::V2 => {
                let mut auth = json!({"passwordCredentials": {
                    "username": c.username, "password": c.password}});
                if !c.project.is_empty() {
                    auth["tenantName"] = json!(c.project);
                }
                json!({ "auth": auth })
            }
        }
    }

    async fn fetch(&self) -> Result<Cached, Error> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uri: Uri = self
            .url
            .parse()
            .map_err(|_| Error::BadUrl(self.url.clone()))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(self.body().to_string())))
            .map_err(|_| Error::BadUrl(self.url.clone()))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|source| Error::Transport {
                url: self.url.clone(),
                source,
            })?;
        let status = resp.status();
        let subject = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|source| Error::Body {
                url: self.url.clone(),
                source,
            })?
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            // Keystone's errors: {"error": {"code", "title", "message"}}.
            let message = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(Error::Auth {
                url: self.url.clone(),
                status: Some(status),
                message: format!(
                    "{message} (user {:?}, project {:?})",
                    self.cfg.username, self.cfg.project
                ),
            });
        }
        let bad = |why: &str| Error::Auth {
            url: self.url.clone(),
            status: Some(status),
            message: why.to_string(),
        };
        let (token, expires) = match self.version {
            Version::V3 => (
                subject.ok_or_else(|| bad("no X-Subject-Token in Keystone's answer"))?,
                body.pointer("/token/expires_at").and_then(Value::as_str),
            ),
            Version::V2 => (
                body.pointer("/access/token/id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| bad("no access.token.id in Keystone's answer"))?,
                body.pointer("/access/token/expires")
                    .and_then(Value::as_str),
            ),
        };
        if token.is_empty() {
            return Err(bad("Keystone returned an empty token"));
        }
        let expires = expires.and_then(parse_rfc3339);
        Ok(Cached { token, expires })
    }
}

/// `2015-11-07T02:58:43.578887Z` (or with `+hh:mm`) -> a time.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let da: i64 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    // Time and zone.
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0i64)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (zh, zm) = z[1..].split_once(':')?;
        (
            t,
            sign * (zh.parse::<i64>().ok()? * 3600 + zm.parse::<i64>().ok()? * 60),
        )
    } else {
        // Keystone v2.0 sometimes writes no zone: UTC.
        (rest, 0)
    };
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec = t.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let se: i64 = whole.parse().ok()?;
    if t.next().is_some() || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().take(9).collect();
        let n: u32 = digits.parse().ok()?;
        n * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
    };
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(u64::from(nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        let t =
            |s: &str| parse_rfc3339(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0.0));
        // Keystone's sample: 2015-11-07T02:58:43.578887Z.
        assert_eq!(t("2015-11-07T02:58:43.578887Z"), Some(1_446_865_123.578887));
        assert_eq!(t("2015-11-07T02:58:43Z"), Some(1_446_865_123.0));
        assert_eq!(t("2015-11-07T03:58:43+01:00"), Some(1_446_865_123.0));
        assert_eq!(t("2000-02-29T12:00:00.5Z"), Some(951_825_600.5));
        for bad in [
            "",
            "2015-13-07T02:58:43Z",
            "2015-11-07",
            "yesterday",
            "2015-11-07T25:00:00Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
