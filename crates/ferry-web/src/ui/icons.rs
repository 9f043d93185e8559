//! Inline SVG icons (no emoji: they render as empty boxes without an emoji font). Each is
//! decorative (`aria-hidden`); the control carrying it has its own label.

macro_rules! icon {
    ($name:ident, $doc:literal, $paths:literal) => {
        #[doc = $doc]
        pub const $name: &str = concat!(
            "<svg class=\"icon\" viewBox=\"0 0 24 24\" width=\"16\" height=\"16\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" stroke-linecap=\"round\" stroke-linejoin=\"round\" aria-hidden=\"true\" focusable=\"false\">",
            $paths,
            "</svg>"
        );
    };
}

icon!(
    TRASH,
    "A waste bin: delete or remove.",
    "<path d=\"M3 6h18\"/><path d=\"M8 6V4h8v2\"/><path d=\"M6 6l1 14h10l1-14\"/><path d=\"M10 11v6M14 11v6\"/>"
);
icon!(
    EDIT,
    "A pencil: edit.",
    "<path d=\"M4 20h4L19 9l-4-4L4 16v4z\"/><path d=\"M13.5 6.5l4 4\"/>"
);
icon!(
    DOWNLOAD,
    "An arrow into a tray: download.",
    "<path d=\"M12 4v11\"/><path d=\"M7 10l5 5 5-5\"/><path d=\"M4 20h16\"/>"
);
icon!(
    UPLOAD,
    "An arrow out of a tray: upload.",
    "<path d=\"M12 16V5\"/><path d=\"M7 10l5-5 5 5\"/><path d=\"M4 20h16\"/>"
);
icon!(PLUS, "A plus: add.", "<path d=\"M12 5v14M5 12h14\"/>");
icon!(
    ARCHIVE,
    "A box: archive.",
    "<path d=\"M3 5h18v4H3z\"/><path d=\"M5 9v10h14V9\"/><path d=\"M10 13h4\"/>"
);
icon!(
    CHEVRON,
    "A downward chevron: opens a menu.",
    "<path d=\"M6 9l6 6 6-6\"/>"
);
