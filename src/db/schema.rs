//! Diesel table definitions, matching `migrations/`.

diesel::table! {
    tenants (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        created_at -> Timestamptz,
        suspended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        two_factor_enabled -> Bool,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
        password_change_required -> Bool,
    }
}

diesel::table! {
    twofa_reset_approvals (id) {
        id -> Uuid,
        requested_by -> Uuid,
        target_user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        approved_by -> Nullable<Uuid>,
        approved_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    orders (tenant_id, id) {
        id -> Uuid,
        tenant_id -> Uuid,
        items -> Jsonb,
        total_cents -> Int8,
        status -> Text,
        note -> Nullable<Text>,
        created_by -> Uuid,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    second_factors (id) {
        id -> Uuid,
        user_id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        kind -> Text,
        secret_ciphertext -> Nullable<Bytea>,
        totp_last_step -> Nullable<Int8>,
        created_at -> Timestamptz,
        enabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    backup_codes (id) {
        id -> Uuid,
        user_id -> Uuid,
        tenant_id -> Nullable<Uuid>,
        code_hash -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(users -> tenants (tenant_id));
diesel::joinable!(orders -> tenants (tenant_id));
diesel::joinable!(second_factors -> users (user_id));
diesel::joinable!(backup_codes -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(tenants, users, orders, second_factors, backup_codes);
