//! Paging for every list: `?limit=` (1–200, default 50) and an opaque `?cursor=`, answered as
//! `{"items": [...], "next_cursor": "…" | null}`.
//!
//! A cursor is the position after the last item of a page, written by the list that made it:
//! base64url (no padding) of a small JSON object naming that list and its position. Clients
//! treat it as opaque. A cursor of another list, a damaged one or one longer than
//! [`MAX_CURSOR_BYTES`] is refused ([`PageError`], 400 `bad_request`). A cursor grants
//! nothing: the position only says where to resume inside what the caller may already see.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Items per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items one page holds.
pub const MAX_LIMIT: u32 = 200;
/// The longest cursor accepted (every cursor this server writes is far shorter).
pub const MAX_CURSOR_BYTES: usize = 512;

/// What is wrong with a page request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("limit must be between 1 and {MAX_LIMIT}")]
    Limit,
    #[error("cursor is not valid for this list")]
    Cursor,
}

/// A checked page request: how many items, and after which position (`None`: the first page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<P> {
    pub limit: u32,
    pub after: Option<P>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<P> {
    /// The list the cursor belongs to.
    l: String,
    /// The position in it.
    p: P,
}

impl<P: Serialize + DeserializeOwned> Page<P> {
    /// Checks `limit` and reads `cursor` as a position of `list`.
    pub fn parse(
        list: &str,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<Page<P>, PageError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            Some(_) => return Err(PageError::Limit),
        };
        let after = match cursor {
            None | Some("") => None,
            Some(text) => Some(decode(list, text)?),
        };
        Ok(Page { limit, after })
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`]) to the page and writes the cursor of the
    /// next page from the last item kept, when more rows followed.
    pub fn finish<T>(&self, list: &str, mut rows: Vec<T>, position: impl Fn(&T) -> P) -> Paged<T> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => Some(encode(list, &position(last))),
            _ => None,
        };
        Paged {
            items: rows,
            next_cursor,
        }
    }
}

/// One page of a list, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Changes the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// The cursor of `position` in `list`.
pub fn encode<P: Serialize>(list: &str, position: &P) -> String {
    let json = serde_json::to_vec(&Envelope {
        l: list.to_string(),
        p: position,
    })
    .expect("positions serialize");
    URL_SAFE_NO_PAD.encode(json)
}

/// The position a cursor of `list` holds.
pub fn decode<P: DeserializeOwned>(list: &str, text: &str) -> Result<P, PageError> {
    if text.len() > MAX_CURSOR_BYTES {
        return Err(PageError::Cursor);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| PageError::Cursor)?;
    let envelope: Envelope<P> = serde_json::from_slice(&bytes).map_err(|_| PageError::Cursor)?;
    if envelope.l != list {
        return Err(PageError::Cursor);
    }
    Ok(envelope.p)
}

/// The position of a list ordered by creation time and then id (orders, tenants): the
/// instant in Unix microseconds and the id. A position outside the years 1970–9999 is refused
/// (no row of ours was created then, and the database could not compare every such instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    /// `created_at` in Unix microseconds.
    t: i64,
    id: uuid::Uuid,
}

impl Created {
    pub fn new(at: chrono::DateTime<chrono::Utc>, id: uuid::Uuid) -> Created {
        Created {
            t: at.timestamp_micros(),
            id,
        }
    }

    /// The instant and the id, once the instant is checked.
    pub fn get(&self) -> Result<(chrono::DateTime<chrono::Utc>, uuid::Uuid), PageError> {
        // 9999-12-31T23:59:59.999999Z
        const LAST: i64 = 253_402_300_799_999_999;
        if !(0..=LAST).contains(&self.t) {
            return Err(PageError::Cursor);
        }
        let at = chrono::DateTime::from_timestamp_micros(self.t).ok_or(PageError::Cursor)?;
        Ok((at, self.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct At {
        micros: i64,
        id: String,
    }

    #[test]
    fn limits_outside_one_to_two_hundred_are_refused() {
        assert_eq!(Page::<At>::parse("x", None, None).unwrap().limit, 50);
        assert_eq!(Page::<At>::parse("x", Some(200), None).unwrap().limit, 200);
        for bad in [0, -1, 201, i64::MAX] {
            assert_eq!(
                Page::<At>::parse("x", Some(bad), None),
                Err(PageError::Limit)
            );
        }
    }

    #[test]
    fn a_cursor_reads_back_in_its_own_list_only() {
        let at = At {
            micros: 7,
            id: "a".into(),
        };
        let text = encode("orders", &at);
        assert_eq!(decode::<At>("orders", &text), Ok(at));
        assert_eq!(decode::<At>("users", &text), Err(PageError::Cursor));
        assert_eq!(
            decode::<At>("orders", "not base64!"),
            Err(PageError::Cursor)
        );
        let long = "A".repeat(MAX_CURSOR_BYTES + 1);
        assert_eq!(decode::<At>("orders", &long), Err(PageError::Cursor));
    }

    #[test]
    fn finish_cuts_the_page_and_points_after_its_last_item() {
        let page = Page::<i64>::parse("n", Some(2), None).unwrap();
        let full = page.finish("n", vec![5, 4, 3], |n| *n);
        assert_eq!(full.items, vec![5, 4]);
        assert_eq!(
            decode::<i64>("n", full.next_cursor.as_deref().unwrap()),
            Ok(4)
        );
        let last = page.finish("n", vec![2, 1], |n| *n);
        assert_eq!((last.items, last.next_cursor), (vec![2, 1], None));
    }

    #[test]
    fn creation_positions_outside_the_supported_years_are_refused() {
        let id = uuid::Uuid::new_v4();
        let now = chrono::Utc::now();
        let at = Created::new(now, id);
        assert_eq!(at.get().unwrap().1, id);
        assert_eq!(
            at.get().unwrap().0.timestamp_micros(),
            now.timestamp_micros()
        );
        for t in [-1, i64::MIN, i64::MAX, 253_402_300_800_000_000] {
            assert_eq!(Created { t, id }.get(), Err(PageError::Cursor));
        }
    }

    proptest! {
        /// Whatever a client sends as a cursor, decoding answers (no panic), and only text this
        /// module wrote for the list reads back.
        #[test]
        fn any_text_decodes_or_is_refused(text in "\\PC{0,600}") {
            let _ = decode::<At>("orders", &text);
        }

        #[test]
        fn every_position_round_trips(micros in any::<i64>(), id in "\\PC{0,40}") {
            let at = At { micros, id };
            prop_assert_eq!(decode::<At>("l", &encode("l", &at)), Ok(at));
        }
    }
}
