//! Order values and the rules they obey, independent of storage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::OrderError;
use crate::ids::{OrderId, TenantId, UserId};

pub const MAX_ITEMS: usize = 100;
pub const MAX_ITEM_NAME_CHARS: usize = 200;
pub const MAX_NOTE_CHARS: usize = 1000;

/// PostgreSQL can store no NUL character in `text` or `jsonb`: one in a client's string is a
/// validation error, never a database error.
fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// The life of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = OrderStatus)]
pub enum Status {
    Open,
    Preparing,
    Ready,
    Completed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Preparing => "preparing",
            Status::Ready => "ready",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Open,
            Status::Preparing,
            Status::Ready,
            Status::Completed,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// The legal transitions: open → preparing | cancelled; preparing → ready | cancelled;
    /// ready → completed. Nothing else, not even to the same status.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Open, Preparing)
                | (Open, Cancelled)
                | (Preparing, Ready)
                | (Preparing, Cancelled)
                | (Ready, Completed)
        )
    }
}

/// A status name that is none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?}")]
pub struct UnknownStatus(String);

impl std::str::FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Status, UnknownStatus> {
        Status::parse(s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// An order's lines as the database returns them: the JSON text of the `items` column,
/// checked to be well-formed JSON when read and written into responses as it is. Lines are
/// validated (as [`OrderItem`]s) before they are stored, so reading them back needs no typed
/// pass: a list of 200 orders would otherwise build and drop 200 vectors of strings only to
/// write the same lines again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredItems(Box<RawValue>);

impl StoredItems {
    /// JSON text already checked to be one well-formed JSON value.
    pub(super) fn from_raw(raw: Box<RawValue>) -> StoredItems {
        StoredItems(raw)
    }

    /// Takes JSON text, refusing text that is not one well-formed JSON value.
    pub fn from_json(text: &[u8]) -> serde_json::Result<StoredItems> {
        serde_json::from_slice(text).map(StoredItems)
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The lines, typed.
    pub fn lines(&self) -> serde_json::Result<Vec<OrderItem>> {
        serde_json::from_str(self.json())
    }
}

/// Equal when the texts are: both sides come from the database's canonical `jsonb` output.
impl PartialEq for StoredItems {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for StoredItems {}

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub tenant_id: TenantId,
    #[schema(value_type = Vec<OrderItem>)]
    pub items: StoredItems,
    pub total_cents: i64,
    pub status: Status,
    pub note: Option<String>,
    pub created_by: UserId,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// The body of `POST …/orders`, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrderBody {
    pub items: Vec<OrderItem>,
    #[serde(default)]
    pub note: Option<String>,
}

/// A validated new order with its total computed by the server.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub items: Vec<OrderItem>,
    pub note: Option<String>,
    pub total_cents: i64,
}

impl TryFrom<NewOrderBody> for NewOrder {
    type Error = OrderError;

    fn try_from(body: NewOrderBody) -> Result<Self, OrderError> {
        if body.items.is_empty() {
            return Err(OrderError::invalid(
                "items",
                "an order needs at least one item",
            ));
        }
        if body.items.len() > MAX_ITEMS {
            return Err(OrderError::invalid(
                "items",
                format!("an order holds at most {MAX_ITEMS} items"),
            ));
        }
        let mut total: i64 = 0;
        for (i, item) in body.items.iter().enumerate() {
            let chars = item.name.trim().chars().count();
            if chars == 0 || item.name.chars().count() > MAX_ITEM_NAME_CHARS {
                return Err(OrderError::invalid(
                    format!("items[{i}].name"),
                    format!("name must be 1 to {MAX_ITEM_NAME_CHARS} characters"),
                ));
            }
            if has_nul(&item.name) {
                return Err(OrderError::invalid(
                    format!("items[{i}].name"),
                    "name must not contain NUL characters",
                ));
            }
            if item.quantity < 1 {
                return Err(OrderError::invalid(
                    format!("items[{i}].quantity"),
                    "quantity must be at least 1",
                ));
            }
            if item.unit_price_cents < 0 {
                return Err(OrderError::invalid(
                    format!("items[{i}].unit_price_cents"),
                    "unit price must not be negative",
                ));
            }
            total = item
                .quantity
                .checked_mul(item.unit_price_cents)
                .and_then(|line| total.checked_add(line))
                .ok_or_else(|| {
                    OrderError::invalid(format!("items[{i}].quantity"), "order total is too large")
                })?;
        }
        if body
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
        {
            return Err(OrderError::invalid(
                "note",
                format!("note must be at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        if body.note.as_deref().is_some_and(has_nul) {
            return Err(OrderError::invalid(
                "note",
                "note must not contain NUL characters",
            ));
        }
        Ok(NewOrder {
            items: body.items,
            note: body.note,
            total_cents: total,
        })
    }
}

/// The body of `PATCH …/orders/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    #[schema(value_type = Status)]
    pub status: String,
}

impl StatusChange {
    pub fn target(&self) -> Result<Status, OrderError> {
        Status::parse(&self.status).ok_or_else(|| {
            OrderError::invalid(
                "status",
                "status must be one of open, preparing, ready, completed, cancelled",
            )
        })
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_items_keep_their_text_and_refuse_what_is_not_json() {
        // As PostgreSQL's `jsonb` output writes lines.
        let text = r#"[{"name": "tea", "quantity": 2, "unit_price_cents": 350}]"#;
        let stored = StoredItems::from_json(text.as_bytes()).unwrap();
        assert_eq!(stored.json(), text);
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            text,
            "written as it is"
        );
        assert_eq!(
            stored.lines().unwrap(),
            vec![OrderItem {
                name: "tea".into(),
                quantity: 2,
                unit_price_cents: 350,
            }]
        );
        for bad in [&b"[{\"name\": "[..], b"", b"[1] [2]", b"\xff"] {
            assert!(StoredItems::from_json(bad).is_err(), "{bad:?}");
        }
    }

    fn item(name: &str, quantity: i64, unit_price_cents: i64) -> OrderItem {
        OrderItem {
            name: name.into(),
            quantity,
            unit_price_cents,
        }
    }

    fn field_of(body: NewOrderBody) -> String {
        match NewOrder::try_from(body) {
            Err(OrderError::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn total_is_computed_by_the_server() {
        let o = NewOrder::try_from(NewOrderBody {
            items: vec![item("tea", 2, 250), item("cake", 1, 400)],
            note: None,
        })
        .unwrap();
        assert_eq!(o.total_cents, 900);
    }

    #[test]
    fn invalid_items_name_the_field() {
        let body = |items| NewOrderBody { items, note: None };
        assert_eq!(field_of(body(vec![])), "items");
        assert_eq!(field_of(body(vec![item("tea", 1, 1); 101])), "items");
        assert_eq!(
            field_of(body(vec![item("tea", 1, 1), item("x", 0, 1)])),
            "items[1].quantity"
        );
        assert_eq!(
            field_of(body(vec![item("tea", 1, -1)])),
            "items[0].unit_price_cents"
        );
        assert_eq!(field_of(body(vec![item("  ", 1, 1)])), "items[0].name");
        assert_eq!(
            field_of(body(vec![item(&"n".repeat(201), 1, 1)])),
            "items[0].name"
        );
        assert_eq!(
            field_of(body(vec![item("tea", i64::MAX, 2)])),
            "items[0].quantity"
        );
        assert!(NewOrder::try_from(body(vec![item(&"n".repeat(200), 1, 0)])).is_ok());
        assert_eq!(
            field_of(body(vec![item("tea", 1, 1), item("t\0a", 1, 1)])),
            "items[1].name"
        );
        let noted = NewOrderBody {
            items: vec![item("tea", 1, 1)],
            note: Some("a\0".into()),
        };
        assert_eq!(field_of(noted), "note");
    }

    #[test]
    fn transitions_follow_the_contract() {
        use Status::*;
        let all = [Open, Preparing, Ready, Completed, Cancelled];
        let legal = [
            (Open, Preparing),
            (Open, Cancelled),
            (Preparing, Ready),
            (Preparing, Cancelled),
            (Ready, Completed),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }
}
