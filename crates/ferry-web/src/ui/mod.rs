//! The server-rendered UI (askama templates, vendored htmx): the shared layout, sign-in, the
//! contacts, custom fields, Recent Runs, the Sync Log, and the integration screens, which are
//! the same for every connector (drawn from the connectors' descriptions).

pub mod alerts;
pub mod api_reference;
pub mod audit;
pub mod browse;
pub mod bulk;
pub mod connect;
mod contact_edit;
mod contacts;
pub mod conversations;
mod fields;
pub mod form;
pub mod home;
pub mod icons;
pub mod integrations;
mod layout;
mod login;
pub mod optin;
pub mod run_details;
pub mod runs;
pub mod security;
pub mod sftp_accounts;
pub mod synclog;

pub(crate) use contact_edit::FORM_OVERHEAD_BYTES;
pub use contact_edit::{
    archive_submit, create_contact_submit, edit_contact_page, edit_contact_submit, import_page,
    import_submit, new_contact_page, test_user_submit, unarchive_submit,
};
pub use contacts::{contact_page, contacts_page};
pub use fields::{fields_create, fields_delete, fields_delete_page, fields_page, fields_rename};
pub use home::home;
pub(crate) use layout::ui_error;
pub use layout::{Nav, asset, error_page, fmt_phone, fmt_time, not_found};
pub use login::{login_page, login_submit, logout};
