//! Property tests of the order body, as the API reads it: any bytes either fail to parse
//! (400 `bad_request`), fail validation naming a field of the body (422 `validation_failed`),
//! or make an order that PostgreSQL can store (201) — never a panic, never a value the
//! database would refuse (a 500).

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::OrderError;
use super::{NewOrder, NewOrderBody, MAX_ITEMS, MAX_ITEM_NAME_CHARS, MAX_NOTE_CHARS};

/// Strings a client might send: short or long, printable or not, with NUL now and then.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,6}",
        3 => "[a-z \\x00]{1,6}",
        1 => any::<String>(),
        1 => (0usize..3).prop_map(|n| "é".repeat(MAX_ITEM_NAME_CHARS - 1 + n)),
        1 => (0usize..3).prop_map(|n| "n".repeat(MAX_NOTE_CHARS - 1 + n)),
    ]
}

/// Mostly valid amounts, so that whole bodies pass often enough to test what passes.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0i64..5).prop_map(Value::from),
        1 => (-3i64..0).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(|f| json!(f)),
        1 => Just(json!("3")),
        1 => Just(Value::Null),
    ]
}

fn item() -> impl Strategy<Value = Value> {
    let rarely = || prop::bool::weighted(0.05);
    (text(), number(), number(), rarely(), rarely()).prop_map(
        |(name, quantity, price, extra, drop_name)| {
            let mut item = json!({"name": name, "quantity": quantity, "unit_price_cents": price});
            if extra {
                item["total"] = json!(1);
            }
            if drop_name {
                item.as_object_mut().unwrap().remove("name");
            }
            item
        },
    )
}

/// Bodies that mostly parse, so validation gets exercised, and bytes that mostly do not.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let items = prop_oneof![vec(item(), 0..4), vec(item(), MAX_ITEMS - 1..MAX_ITEMS + 2)];
    let structured = (items, proptest::option::of(text())).prop_map(|(items, note)| {
        let mut body = json!({ "items": items });
        if let Some(note) = note {
            body["note"] = json!(note);
        }
        serde_json::to_vec(&body).unwrap()
    });
    prop_oneof![
        4 => structured,
        1 => vec(any::<u8>(), 0..64),
    ]
}

/// The 422 field paths a body of `n` items may name.
fn allowed_field(field: &str, n: usize) -> bool {
    if field == "items" || field == "note" {
        return true;
    }
    let Some(rest) = field.strip_prefix("items[") else {
        return false;
    };
    let Some((index, name)) = rest.split_once("].") else {
        return false;
    };
    index.parse::<usize>().is_ok_and(|i| i < n)
        && ["name", "quantity", "unit_price_cents"].contains(&name)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_body_is_refused_with_a_spec_code_or_makes_a_storable_order(bytes in body()) {
        let Ok(parsed) = serde_json::from_slice::<NewOrderBody>(&bytes) else {
            return Ok(()); // 400 bad_request
        };
        let (items, note) = (parsed.items.clone(), parsed.note.clone());
        match NewOrder::try_from(parsed) {
            Ok(order) => {
                prop_assert!((1..=MAX_ITEMS).contains(&order.items.len()));
                let mut total: i64 = 0;
                for i in &order.items {
                    prop_assert!(!i.name.contains('\0'));
                    prop_assert!(!i.name.trim().is_empty());
                    prop_assert!(i.name.chars().count() <= MAX_ITEM_NAME_CHARS);
                    prop_assert!(i.quantity >= 1 && i.unit_price_cents >= 0);
                    total += i.quantity * i.unit_price_cents;
                }
                prop_assert_eq!(order.total_cents, total);
                prop_assert_eq!(&order.items, &items);
                prop_assert_eq!(&order.note, &note);
                if let Some(n) = &order.note {
                    prop_assert!(!n.contains('\0'));
                    prop_assert!(n.chars().count() <= MAX_NOTE_CHARS);
                }
            }
            Err(OrderError::Invalid { field, .. }) => {
                prop_assert!(allowed_field(&field, items.len()), "field {}", field);
            }
            Err(other) => prop_assert!(false, "not a validation error: {:?}", other),
        }
    }
}
