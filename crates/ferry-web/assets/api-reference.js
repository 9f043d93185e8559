// Starts the vendored Scalar API Reference on Ferry's OpenAPI document (the page's #api-reference).
// No proxy (requests go straight to this Ferry, with the session cookie), no fonts from the
// network, no telemetry.
(function () {
  var el = document.getElementById('api-reference');
  if (!el || !window.Scalar) return;
  window.Scalar.createApiReference('#api-reference', {
    url: el.dataset.url,
    proxyUrl: '',
    withDefaultFonts: false,
    telemetry: false,
    hideClientButton: false,
    forceDarkModeState: 'light',
    hideDarkModeToggle: true,
    showDeveloperTools: 'never',
    agent: { disabled: true },
    mcp: { disabled: true },
    authentication: { preferredSecurityScheme: 'session' },
  });
})();
