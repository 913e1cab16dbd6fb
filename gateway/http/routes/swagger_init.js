// /docs: Swagger UI on the gateway's OpenAPI document. A file of its own (not an inline
// script), so the page can be sent with Content-Security-Policy: default-src 'self'.
"use strict";

const OPENAPI_PATH = "/openapi.json";

// The Swagger UI the gateway ships (4.x, from the swagger-ui-bundle package) renders
// OpenAPI 3.0 documents and refuses to show any other version; the gateway's document is
// 3.1, whose few differences in use here (a null type among anyOf's choices, examples as
// a list) it displays as they are. Only the copy the UI reads is relabelled: clients and
// generators still get the 3.1 document from /openapi.json.
function readableVersion(response) {
  if (!response.ok || new URL(response.url, window.location.href).pathname !== OPENAPI_PATH) {
    return response;
  }
  let spec;
  try {
    spec = JSON.parse(response.text);
  } catch (error) {
    return response; // the UI reports it
  }
  if (typeof spec.openapi === "string" && spec.openapi.startsWith("3.1.")) {
    spec.openapi = "3.0.3";
    response.text = response.data = JSON.stringify(spec);
    response.body = response.obj = spec;
  }
  return response;
}

window.ui = SwaggerUIBundle({
  url: OPENAPI_PATH,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The default sends the document to validator.swagger.io for a badge: nothing leaves.
  validatorUrl: null,
  responseInterceptor: readableVersion,
});
