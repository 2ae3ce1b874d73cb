/* The visual rule builder: a tree editor over an audience's rules (the JSON language of
 * audiences/rules.py, described in docs/audiences.md).
 *
 * The builder's state IS the rules JSON. Each control edits one place of it, named by a
 * JSON pointer (data-path on the node, data-pointer on the control), and every edit writes
 * JSON.stringify(state, null, 2) into the textarea #rules-json (name="rules"), which the form
 * saves and the JSON view shows. Editing that textarea re-renders the tree. Nothing is
 * reordered or normalised: what the builder does not touch round-trips unchanged, and a
 * condition it cannot show as controls is shown as JSON in place.
 *
 * What the page offers (attributes, their types, the operators each type allows, channels,
 * audiences) comes from the server in <script id="rule-catalog">; nothing is duplicated here.
 *
 * After each edit the builder dispatches `rules-changed` on <body>; the preview panel listens
 * (hx-trigger with delay:400ms). Problems with a JSON pointer arrive in
 * <script type="application/json" class="rules-problems"> ({"source", "errors"}) inside the
 * page (a failed save) or a preview or checks fragment, or as a `rules-problems` event with
 * the same detail; each is shown beside the condition or field it points at.
 */
(function () {
  "use strict";

  var CHANGED = "rules-changed";
  var PROBLEMS = "rules-problems";
  var KINDS = ["all", "any", "not", "attr", "consent", "event", "in_audience"];
  var LIST_OPS = ["in", "not_in"];
  var NUMERIC_OPS = ["gt", "gte", "lt", "lte", "between"];
  var CONDITION_TYPES = [
    ["attr", "Profile attribute"],
    ["event", "Profile event"],
    ["consent", "Consent"],
    ["in_audience", "In another audience"],
  ];
  var CUSTOM = "__custom__";

  var catalog, state, valid, textarea, tree, statusLine, jsonTimer;
  var problems = {}; // source → [{pointer, code, message, hint}]
  var problemSeq = 0;

  // --- small helpers --------------------------------------------------------------------

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }
  function isScalar(value) {
    return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
  }
  function onlyKeys(node, allowed) {
    return Object.keys(node).every(function (key) { return allowed.indexOf(key) >= 0; });
  }
  function isWhole(value) {
    return value === undefined || (typeof value === "number" && Math.floor(value) === value);
  }
  function segments(pointer) {
    if (!pointer) return [];
    return pointer.slice(1).split("/").map(function (s) { return s.replace(/~1/g, "/").replace(/~0/g, "~"); });
  }
  function join(pointer) {
    for (var i = 1; i < arguments.length; i++) {
      pointer += "/" + String(arguments[i]).replace(/~/g, "~0").replace(/\//g, "~1");
    }
    return pointer;
  }
  function parentPointer(pointer) {
    return pointer.slice(0, pointer.lastIndexOf("/"));
  }
  function getAt(pointer) {
    var node = state;
    segments(pointer).forEach(function (s) { node = node == null ? undefined : node[Array.isArray(node) ? Number(s) : s]; });
    return node;
  }
  function setAt(pointer, value) {
    if (!pointer) { state = value; return; }
    var parts = segments(pointer);
    var last = parts.pop();
    var node = state;
    parts.forEach(function (s) { node = node[Array.isArray(node) ? Number(s) : s]; });
    node[Array.isArray(node) ? Number(last) : last] = value;
  }
  function idFor(pointer, role) {
    return "rb" + (pointer || "-root").replace(/[^A-Za-z0-9]/g, "-") + "--" + role;
  }
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { if (c) node.appendChild(c); });
      else node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }
  function option(value, label, selected) {
    return el("option", { value: value, selected: selected, text: label });
  }
  function attributeSpec(name) {
    if (typeof name !== "string") return null;
    for (var i = 0; i < catalog.attributes.length; i++) {
      if (catalog.attributes[i].name === name) return catalog.attributes[i];
    }
    if (name.indexOf(catalog.custom_prefix) === 0) {
      return { name: name, label: "Custom attribute", type: catalog.custom_type, values: [], custom: true };
    }
    return null;
  }
  function opLabel(op) {
    return catalog.operator_labels[op] || op;
  }
  /* The names the environment's data holds (its catalogue), offered as suggestions in the
     custom attribute key, event type and property boxes: <datalist> elements made once. */
  var LISTS = { keys: "rb-custom-keys", events: "rb-event-types" };
  var propertyLists = {};
  function suggestion(entry) {
    var note = [];
    if (entry.types && entry.types.length) note.push(entry.types.join(" or "));
    note.push("seen " + Number(entry.seen).toLocaleString("en") + "×");
    return el("option", { value: entry.key, label: entry.key + " — " + note.join(", ") });
  }
  function makeLists() {
    var holder = el("div", { hidden: true, id: "rb-suggestions" });
    holder.appendChild(el("datalist", { id: LISTS.keys }, (catalog.custom_attributes || []).map(suggestion)));
    holder.appendChild(el("datalist", { id: LISTS.events }, (catalog.event_types || []).map(suggestion)));
    (catalog.event_types || []).forEach(function (event, index) {
      propertyLists[event.key] = "rb-event-properties-" + index;
      holder.appendChild(el("datalist", { id: propertyLists[event.key] }, (event.properties || []).map(suggestion)));
    });
    document.body.appendChild(holder);
  }

  // --- what each node is --------------------------------------------------------------------

  function valueFits(op, value) {
    if (value === undefined) return true;
    if (LIST_OPS.indexOf(op) >= 0) return Array.isArray(value) && value.every(isScalar);
    if (op === "between") return Array.isArray(value) && value.length === 2 && value.every(isScalar);
    return isScalar(value);
  }
  function filtersFit(where) {
    if (where === undefined) return true;
    return Array.isArray(where) && where.every(function (item) {
      return isObject(item) && onlyKeys(item, ["property", "op", "value"]) && typeof item.property === "string" &&
        (item.op === undefined || typeof item.op === "string") && valueFits(item.op, item.value);
    });
  }
  /* The kind of control a node gets; "raw" when the builder cannot show it as controls
     (it is then edited as JSON in place, and round-trips untouched). */
  function kindOf(node) {
    if (!isObject(node)) return "raw";
    var present = KINDS.filter(function (k) { return Object.prototype.hasOwnProperty.call(node, k); });
    if (present.length !== 1) return "raw";
    var kind = present[0];
    var keys = Object.keys(node);
    if (kind === "all" || kind === "any") return keys.length === 1 && Array.isArray(node[kind]) ? "group" : "raw";
    if (kind === "not") return keys.length === 1 ? "not" : "raw";
    if (kind === "attr") {
      return onlyKeys(node, ["attr", "op", "value"]) && typeof node.attr === "string" &&
        (node.op === undefined || typeof node.op === "string") && valueFits(node.op, node.value) ? "attr" : "raw";
    }
    if (kind === "consent") {
      return onlyKeys(node, ["consent", "is"]) && typeof node.consent === "string" &&
        (node.is === undefined || typeof node.is === "boolean") ? "consent" : "raw";
    }
    if (kind === "event") {
      return onlyKeys(node, ["event", "within_days", "min_count", "where"]) && typeof node.event === "string" &&
        isWhole(node.within_days) && isWhole(node.min_count) && filtersFit(node.where) ? "event" : "raw";
    }
    return keys.length === 1 && typeof node.in_audience === "number" ? "in_audience" : "raw";
  }

  // --- new nodes and value conversions ----------------------------------------------------------

  function defaultCondition() {
    return JSON.parse(JSON.stringify(catalog.default_condition));
  }
  function channelNow() {
    var select = document.getElementById("id_channel");
    return select && select.value ? select.value : catalog.channels[0].value;
  }
  function newCondition(kind) {
    if (kind === "event") return { event: "", within_days: 30 };
    if (kind === "consent") return { consent: channelNow(), is: true };
    if (kind === "in_audience") return { in_audience: catalog.audiences.length ? catalog.audiences[0].id : 0 };
    return defaultCondition();
  }
  /* The value an operator needs, kept from the previous one where it fits. */
  function convertValue(value, op, spec) {
    var first = Array.isArray(value) ? value[0] : value;
    if (op === "is_null") return true;
    if (op === "within_days") return typeof value === "number" && value > 0 ? value : 30;
    if (LIST_OPS.indexOf(op) >= 0) {
      if (Array.isArray(value)) return value.filter(isScalar);
      return first === undefined || first === "" || typeof first === "boolean" ? [] : [first];
    }
    if (op === "between") return Array.isArray(value) && value.length === 2 ? value : [isScalar(first) && first !== true ? first : "", ""];
    var textual = spec && spec.type !== catalog.custom_type;
    if (typeof first === "string" || (typeof first === "number" && !textual)) return first;
    if (spec && spec.values && spec.values.length) return spec.values[0].value;
    return "";
  }
  /* Text typed into a value box, as the JSON value to store. Custom attributes and event
     properties hold numbers, text or true/false: what looks like a number becomes one
     (comparisons such as gt always want one); "true"/"false" become true/false. */
  function typed(text, type, op) {
    if (type !== "json") return text;
    var trimmed = text.trim();
    if (trimmed !== "" && !isNaN(Number(trimmed)) && /^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
    if (NUMERIC_OPS.indexOf(op) < 0 && (trimmed === "true" || trimmed === "false")) return trimmed === "true";
    return text;
  }
  function shown(value) {
    if (value === undefined || value === null) return "";
    return typeof value === "string" ? value : String(value);
  }

  // --- rendering ------------------------------------------------------------------------------

  function labelled(pointer, role, text, control, extraClass) {
    control.id = control.id || idFor(pointer, role);
    return el("div", { class: "rb-field" + (extraClass ? " " + extraClass : "") },
      el("label", { for: control.id, text: text }), control);
  }
  function button(text, action, pointer, attrs) {
    var base = { type: "button", "data-action": action, "data-path": pointer, text: text };
    Object.keys(attrs || {}).forEach(function (k) { base[k] = attrs[k]; });
    return el("button", base);
  }
  function problemList(pointer) {
    return el("ul", { class: "node-problems", id: idFor(pointer, "problems"), "aria-live": "polite" });
  }

  function renderNode(node, pointer, title, removable) {
    var kind = kindOf(node);
    var titleId = idFor(pointer, "title");
    var box = el("div", {
      class: "rule-node rule-" + kind,
      "data-path": pointer,
      "data-kind": kind,
      role: "group",
      "aria-labelledby": titleId,
    });
    var head = el("div", { class: "node-head" }, el("span", { class: "node-title", id: titleId, text: title }));
    box.appendChild(head);
    if (kind === "group") renderGroup(box, head, node, pointer, title);
    else if (kind === "not") renderNot(box, head, node, pointer, title);
    else renderCondition(box, node, pointer, kind);
    var actions = el("div", { class: "node-actions" });
    if (kind !== "not") actions.appendChild(button("Negate", "negate", pointer, { "aria-label": "Negate " + title.toLowerCase() }));
    if (removable) actions.appendChild(button("Remove", "remove", pointer, { "aria-label": "Remove " + title.toLowerCase() }));
    if (kind === "group") head.appendChild(actions);
    else if (kind === "not") head.appendChild(actions);
    else box.appendChild(actions);
    box.appendChild(problemList(pointer));
    return box;
  }

  function renderGroup(box, head, node, pointer, title) {
    var key = Object.prototype.hasOwnProperty.call(node, "all") ? "all" : "any";
    var match = el("select", { "data-role": "match", "data-path": pointer, "data-pointer": join(pointer, key) },
      option("all", "all of these (and)", key === "all"),
      option("any", "any of these (or)", key === "any"));
    head.appendChild(labelled(pointer, "match", "Match", match, "inline"));
    var children = node[key];
    var list = el("ol", { class: "node-children" });
    var prefix = title === "All rules" ? "" : (title.replace(/^\D+/, "") + ".");
    children.forEach(function (child, index) {
      var childPointer = join(pointer, key, index);
      var number = prefix + (index + 1);
      var childKind = kindOf(child);
      var childTitle = (childKind === "group" ? "Group " : childKind === "not" ? "Negation " : "Condition ") + number;
      list.appendChild(el("li", null, renderNode(child, childPointer, childTitle, true)));
    });
    if (children.length) box.appendChild(list);
    else {
      box.appendChild(el("p", {
        class: "hint small empty-group",
        text: pointer === "" ? "No conditions yet: everyone in the environment matches. Add a condition."
          : "This group is empty: add a condition or remove the group.",
      }));
    }
    var root = pointer === "";
    box.appendChild(el("div", { class: "node-add" },
      button("Add condition", "add-condition", pointer, { id: root ? "add-condition" : idFor(pointer, "add-condition") }),
      button("Add group", "add-group", pointer, { id: root ? "add-group" : idFor(pointer, "add-group") })));
  }

  function renderNot(box, head, node, pointer, title) {
    head.appendChild(el("span", { class: "not-badge", text: "NOT" }));
    head.appendChild(el("span", { class: "hint small", text: "leaves out the people who match:" }));
    head.appendChild(button("Undo negation", "unnegate", pointer, { id: idFor(pointer, "unnegate") }));
    var child = node.not;
    var childKind = kindOf(child);
    var childTitle = (childKind === "group" ? "Group " : childKind === "not" ? "Double negation " : "Condition ") + (title.replace(/^\D+/, "") || "1");
    box.appendChild(el("div", { class: "node-body" }, renderNode(child, join(pointer, "not"), childTitle, false)));
  }

  function renderCondition(box, node, pointer, kind) {
    var row = el("div", { class: "node-row" });
    box.appendChild(row);
    if (kind === "raw") {
      renderRaw(box, row, node, pointer);
      return;
    }
    var typeSelect = el("select", { "data-role": "kind", "data-path": pointer });
    CONDITION_TYPES.forEach(function (entry) { typeSelect.appendChild(option(entry[0], entry[1], entry[0] === kind)); });
    row.appendChild(labelled(pointer, "kind", "Condition type", typeSelect));
    if (kind === "attr") renderAttr(box, row, node, pointer);
    else if (kind === "event") renderEvent(box, row, node, pointer);
    else if (kind === "consent") renderConsent(row, node, pointer);
    else renderInAudience(row, node, pointer);
  }

  function renderRaw(box, row, node, pointer) {
    var area = el("textarea", { rows: 3, spellcheck: "false", "data-role": "raw", "data-path": pointer, "data-pointer": pointer });
    area.value = JSON.stringify(node, null, 2);
    row.appendChild(labelled(pointer, "raw", "Condition as JSON", area, "wide"));
    box.appendChild(el("p", {
      class: "hint small raw-note", id: idFor(pointer, "raw-note"),
      text: "The builder cannot show this condition as fields; edit it as JSON here (or pick a condition type after removing it).",
    }));
  }

  function renderAttr(box, row, node, pointer) {
    var spec = attributeSpec(node.attr);
    var attrSelect = el("select", { "data-role": "attr", "data-path": pointer, "data-pointer": join(pointer, "attr") });
    var known = false;
    catalog.attributes.forEach(function (a) {
      var selected = a.name === node.attr;
      known = known || selected;
      attrSelect.appendChild(option(a.name, a.label, selected));
    });
    var custom = spec && spec.custom;
    attrSelect.appendChild(option(CUSTOM, "Custom attribute…", !!custom));
    if (!known && !custom) attrSelect.appendChild(option(node.attr, node.attr + " (unknown)", true));
    row.appendChild(labelled(pointer, "attr", "Attribute", attrSelect));
    if (custom) {
      var key = el("input", {
        type: "text", "data-role": "custom-key", "data-path": pointer, "data-pointer": join(pointer, "attr"),
        placeholder: "e.g. plan", autocomplete: "off", spellcheck: "false", list: LISTS.keys,
      });
      key.value = node.attr.slice(catalog.custom_prefix.length);
      row.appendChild(labelled(pointer, "custom-key", "Custom attribute key", key));
    }
    var ops = spec ? catalog.operators[spec.type] : [];
    var opSelect = el("select", { "data-role": "op", "data-path": pointer, "data-pointer": join(pointer, "op") });
    if (node.op === undefined) opSelect.appendChild(option("", "Choose an operator", true));
    ops.forEach(function (op) { opSelect.appendChild(option(op, opLabel(op), op === node.op)); });
    if (node.op !== undefined && ops.indexOf(node.op) < 0) {
      opSelect.appendChild(option(node.op, opLabel(node.op) + " (not allowed for this attribute)", true));
    }
    row.appendChild(labelled(pointer, "op", "Operator", opSelect));
    renderValue(row, node, pointer, node.op, spec ? spec.type : null, spec);
  }

  /* The value editor an operator needs: none for is_null, a list for in/not_in, two for
     between, days for within_days, a choice for enums, else one box. */
  function renderValue(row, node, pointer, op, type, spec) {
    var at = join(pointer, "value");
    var value = node.value;
    var enumValues = spec && spec.values && spec.values.length ? spec.values : null;
    if (op === undefined) return;
    if (op === "is_null") {
      row.appendChild(el("span", { class: "value-note small", text: value === false ? "(value: false — has a value)" : "" }));
      return;
    }
    if (op === "within_days") {
      var days = el("input", { type: "number", min: 1, max: catalog.max_within_days, step: 1, inputmode: "numeric",
        "data-role": "value-days", "data-path": pointer, "data-pointer": at, class: "short" });
      days.value = shown(value);
      row.appendChild(labelled(pointer, "value-days", "Days", days));
      return;
    }
    if (op === "between") {
      var pair = Array.isArray(value) ? value : ["", ""];
      ["From", "To"].forEach(function (text, index) {
        var input = valueInput(pointer, "value-" + index, join(at, index), pair[index], type, op);
        input.setAttribute("data-index", index);
        row.appendChild(labelled(pointer, "value-" + index, text, input));
      });
      return;
    }
    if (LIST_OPS.indexOf(op) >= 0) {
      var items = Array.isArray(value) ? value : [];
      if (enumValues) {
        var fieldset = el("fieldset", { class: "rb-values", "data-pointer": at }, el("legend", { text: "Values" }));
        enumValues.forEach(function (choice) {
          var id = idFor(pointer, "value-" + choice.value);
          fieldset.appendChild(el("span", { class: "rb-check" },
            el("input", { type: "checkbox", id: id, value: choice.value, checked: items.indexOf(choice.value) >= 0,
              "data-role": "value-check", "data-path": pointer }),
            el("label", { for: id, text: choice.value, title: choice.label })));
        });
        items.forEach(function (item) {
          if (enumValues.some(function (c) { return c.value === item; })) return;
          var id = idFor(pointer, "value-x-" + String(item));
          fieldset.appendChild(el("span", { class: "rb-check unknown" },
            el("input", { type: "checkbox", id: id, value: String(item), checked: true, "data-role": "value-check", "data-path": pointer }),
            el("label", { for: id, text: String(item) + " (unknown)" })));
        });
        row.appendChild(fieldset);
        return;
      }
      var group = el("fieldset", { class: "rb-values rb-list", "data-pointer": at }, el("legend", { text: "Values" }));
      items.forEach(function (item, index) {
        var input = valueInput(pointer, "value-" + index, join(at, index), item, type, op);
        input.setAttribute("data-index", index);
        input.setAttribute("data-role", "value-item");
        group.appendChild(el("span", { class: "rb-item" },
          labelled(pointer, "value-" + index, "Value " + (index + 1), input, "inline"),
          button("Remove", "remove-value", pointer, { "data-index": index, "aria-label": "Remove list item " + (index + 1) })));
      });
      group.appendChild(button("Add value", "add-value", pointer, { id: idFor(pointer, "add-value") }));
      row.appendChild(group);
      return;
    }
    if (enumValues) {
      var select = el("select", { "data-role": "value-choice", "data-path": pointer, "data-pointer": at });
      var found = false;
      enumValues.forEach(function (choice) {
        found = found || choice.value === value;
        select.appendChild(option(choice.value, choice.label, choice.value === value));
      });
      if (!found) select.appendChild(option(shown(value), shown(value) + " (unknown)", true));
      row.appendChild(labelled(pointer, "value", "Value", select));
      return;
    }
    row.appendChild(labelled(pointer, "value", "Value", valueInput(pointer, "value", at, value, type, op)));
  }

  function valueInput(pointer, role, at, value, type, op) {
    var input = el("input", {
      type: "text", "data-role": role.indexOf("value-") === 0 && role !== "value" ? "value-part" : "value",
      "data-path": pointer, "data-pointer": at, "data-type": type || "", "data-op": op || "",
      autocomplete: "off", spellcheck: "false",
      placeholder: type === "datetime" ? "2026-11-01" : null,
      inputmode: NUMERIC_OPS.indexOf(op) >= 0 && type === "json" ? "decimal" : null,
    });
    input.value = shown(value);
    return input;
  }

  function renderEvent(box, row, node, pointer) {
    var type = el("input", { type: "text", "data-role": "event", "data-path": pointer, "data-pointer": join(pointer, "event"),
      placeholder: "e.g. cart_abandoned", autocomplete: "off", spellcheck: "false", list: LISTS.events });
    type.value = node.event;
    row.appendChild(labelled(pointer, "event", "Event type", type));
    var within = el("input", { type: "number", min: 1, max: catalog.max_within_days, step: 1, inputmode: "numeric",
      class: "short", "data-role": "within_days", "data-path": pointer, "data-pointer": join(pointer, "within_days"),
      placeholder: "any time" });
    within.value = shown(node.within_days);
    row.appendChild(labelled(pointer, "within_days", "Within (days)", within));
    var count = el("input", { type: "number", min: 1, step: 1, inputmode: "numeric", class: "short",
      "data-role": "min_count", "data-path": pointer, "data-pointer": join(pointer, "min_count"), placeholder: "1" });
    count.value = shown(node.min_count);
    row.appendChild(labelled(pointer, "min_count", "At least (times)", count));

    var filters = el("fieldset", { class: "rb-filters", "data-pointer": join(pointer, "where") },
      el("legend", { text: "Property filters" }));
    (node.where || []).forEach(function (item, index) {
      var at = join(pointer, "where", index);
      var line = el("div", { class: "node-row rb-filter", "data-path": at });
      var property = el("input", { type: "text", "data-role": "property", "data-path": at, "data-pointer": join(at, "property"),
        placeholder: "e.g. amount", autocomplete: "off", spellcheck: "false", list: propertyLists[node.event] || null });
      property.value = shown(item.property);
      line.appendChild(labelled(at, "property", "Property", property));
      var op = el("select", { "data-role": "filter-op", "data-path": at, "data-pointer": join(at, "op") });
      if (item.op === undefined) op.appendChild(option("", "Choose an operator", true));
      catalog.event_property_operators.forEach(function (o) { op.appendChild(option(o, opLabel(o), o === item.op)); });
      if (item.op !== undefined && catalog.event_property_operators.indexOf(item.op) < 0) {
        op.appendChild(option(item.op, item.op + " (not allowed here)", true));
      }
      line.appendChild(labelled(at, "filter-op", "Operator", op));
      renderValue(line, item, at, item.op, "json", null);
      line.appendChild(button("Remove filter", "remove-filter", at, { "aria-label": "Remove filter " + (index + 1) }));
      filters.appendChild(line);
    });
    filters.appendChild(button("Add property filter", "add-filter", pointer, { id: idFor(pointer, "add-filter") }));
    box.appendChild(filters);
  }

  function renderConsent(row, node, pointer) {
    var channel = el("select", { "data-role": "consent", "data-path": pointer, "data-pointer": join(pointer, "consent") });
    var known = false;
    catalog.channels.forEach(function (c) {
      known = known || c.value === node.consent;
      channel.appendChild(option(c.value, c.label, c.value === node.consent));
    });
    if (!known) channel.appendChild(option(node.consent, node.consent + " (unknown)", true));
    row.appendChild(labelled(pointer, "consent", "Channel", channel));
    var is = el("select", { "data-role": "is", "data-path": pointer, "data-pointer": join(pointer, "is") },
      option("true", "granted", node.is !== false),
      option("false", "not granted", node.is === false));
    row.appendChild(labelled(pointer, "is", "Consent", is));
  }

  function renderInAudience(row, node, pointer) {
    var select = el("select", { "data-role": "in_audience", "data-path": pointer, "data-pointer": join(pointer, "in_audience") });
    var known = false;
    catalog.audiences.forEach(function (a) {
      known = known || a.id === node.in_audience;
      select.appendChild(option(String(a.id), a.label, a.id === node.in_audience));
    });
    if (!known) {
      select.appendChild(option(String(node.in_audience),
        node.in_audience ? "Audience #" + node.in_audience + " (not in this environment)" : "No other audience to pick", true));
    }
    row.appendChild(labelled(pointer, "in_audience", "Audience", select));
  }

  function render(focusId) {
    var active = document.activeElement;
    var keepId = focusId || (active && tree.contains(active) ? active.id : null);
    tree.replaceChildren();
    if (!valid) {
      tree.appendChild(el("p", { class: "notice small", text: "The JSON below is not valid, so the builder cannot show it. Fix it in the JSON view; the builder follows." }));
    } else {
      var kind = kindOf(state);
      if (kind !== "group") {
        tree.appendChild(el("div", { class: "node-add root-add" },
          button("Add condition", "add-condition", "", { id: "add-condition" }),
          button("Add group", "add-group", "", { id: "add-group" })));
      }
      tree.appendChild(renderNode(state, "", kind === "group" ? "All rules" : kind === "not" ? "Negation 1" : "Condition 1", false));
    }
    showProblems();
    if (keepId) {
      var target = document.getElementById(keepId);
      if (target) target.focus();
    }
  }

  // --- editing ------------------------------------------------------------------------------

  function commit() {
    textarea.value = JSON.stringify(state, null, 2);
    if (statusLine) statusLine.textContent = "";
    forgetCheckedRuleProblems();
    showProblems();
    document.body.dispatchEvent(new CustomEvent(CHANGED, { bubbles: true }));
  }

  // The rules changed: what a save or Validate found in them may no longer hold, nor point
  // where it did. The live preview's own marks come back with its next answer.
  function forgetCheckedRuleProblems() {
    ["validate", "server"].forEach(function (source) {
      if (problems[source]) problems[source] = problems[source].filter(function (p) { return !isRulePointer(p.pointer); });
    });
  }

  function groupKey(node) {
    return Object.prototype.hasOwnProperty.call(node, "all") ? "all" : "any";
  }

  function onClick(event) {
    var target = event.target.closest("button[data-action]");
    if (!target || !tree.contains(target)) return;
    var action = target.getAttribute("data-action");
    var pointer = target.getAttribute("data-path");
    var node = getAt(pointer);
    var focus = null;
    if (action === "add-condition" || action === "add-group") {
      var fresh = action === "add-group" ? null : defaultCondition();
      if (kindOf(node) !== "group") {
        // The root is one condition: put it in an "all" group with the new one.
        state = { all: [state] };
        pointer = "";
        node = state;
      }
      var key = groupKey(node);
      if (!fresh) fresh = key === "all" ? { any: [defaultCondition()] } : { all: [defaultCondition()] };
      node[key].push(fresh);
      var at = join(pointer, key, node[key].length - 1);
      focus = idFor(at, action === "add-group" ? "match" : "attr");
    } else if (action === "remove") {
      var parent = parentPointer(pointer);
      var last = segments(pointer).pop();
      if (last === "not") {
        pointer = parent; // removing the condition of a negation removes the negation
        parent = parentPointer(pointer);
      }
      var list = getAt(parent);
      if (Array.isArray(list)) {
        list.splice(Number(segments(pointer).pop()), 1);
        focus = parentPointer(parent) === "" ? "add-condition" : idFor(parentPointer(parent), "add-condition");
      } else if (pointer === "") {
        state = { all: [] };
        focus = "add-condition";
      }
    } else if (action === "negate") {
      setAt(pointer, { not: node });
      focus = idFor(pointer, "unnegate");
    } else if (action === "unnegate") {
      setAt(pointer, node.not);
      focus = idFor(pointer, kindOf(node.not) === "group" ? "match" : "kind");
    } else if (action === "add-value") {
      if (!Array.isArray(node.value)) node.value = [];
      node.value.push("");
      focus = idFor(pointer, "value-" + (node.value.length - 1));
    } else if (action === "remove-value") {
      node.value.splice(Number(target.getAttribute("data-index")), 1);
      focus = idFor(pointer, "add-value");
    } else if (action === "add-filter") {
      if (!Array.isArray(node.where)) node.where = [];
      node.where.push({ property: "", op: "eq", value: "" });
      focus = idFor(join(pointer, "where", node.where.length - 1), "property");
    } else if (action === "remove-filter") {
      var eventPointer = parentPointer(parentPointer(pointer));
      var eventNode = getAt(eventPointer);
      eventNode.where.splice(Number(segments(pointer).pop()), 1);
      if (!eventNode.where.length) delete eventNode.where;
      focus = idFor(eventPointer, "add-filter");
    } else {
      return;
    }
    render(focus);
    commit();
  }

  function setMaybeNumber(node, key, text) {
    if (text === "") delete node[key];
    else node[key] = Number(text);
  }

  /* Changes of selects and checkboxes: they may change which controls a node needs. */
  function onChange(event) {
    var control = event.target;
    var role = control.getAttribute("data-role");
    var pointer = control.getAttribute("data-path");
    if (!role || pointer === null) return;
    var node = getAt(pointer);
    if (role === "raw") {
      try {
        setAt(pointer, JSON.parse(control.value));
      } catch (error) {
        var note = document.getElementById(idFor(pointer, "raw-note"));
        if (note) note.textContent = "Not valid JSON yet (" + error.message + "); the condition keeps its last valid form.";
        return;
      }
      render(idFor(pointer, kindOf(getAt(pointer)) === "raw" ? "raw" : "kind"));
      commit();
      return;
    }
    if (role === "kind") {
      setAt(pointer, newCondition(control.value));
      render(idFor(pointer, "kind"));
      commit();
      return;
    }
    if (role === "match") {
      var oldKey = groupKey(node);
      var children = node[oldKey];
      var replacement = {};
      replacement[control.value] = children;
      setAt(pointer, replacement);
      render(idFor(pointer, "match"));
      commit();
      return;
    }
    if (role === "attr") {
      var name = control.value === CUSTOM ? catalog.custom_prefix : control.value;
      if (control.value === CUSTOM && typeof node.attr === "string" && node.attr.indexOf(catalog.custom_prefix) === 0) return;
      var before = attributeSpec(node.attr);
      var spec = attributeSpec(name) || { type: catalog.custom_type, values: [] };
      var ops = catalog.operators[spec.type];
      var op = ops.indexOf(node.op) >= 0 ? node.op : ops[0];
      var sameType = before && before.type === spec.type && !(spec.values && spec.values.length);
      var fresh = { attr: name, op: op };
      fresh.value = sameType && op === node.op ? node.value : convertValue(undefined, op, spec);
      if (op === "is_null") fresh.value = true;
      setAt(pointer, fresh);
      render(idFor(pointer, control.value === CUSTOM ? "custom-key" : "attr"));
      commit();
      return;
    }
    if (role === "op" || role === "filter-op") {
      var attrSpec = role === "op" ? attributeSpec(node.attr) : null;
      node.op = control.value;
      node.value = convertValue(node.value, control.value, attrSpec);
      if (role === "filter-op" && NUMERIC_OPS.indexOf(node.op) >= 0 && typeof node.value === "string" && node.value !== "") {
        node.value = typed(node.value, "json", node.op);
      }
      render(idFor(pointer, role));
      commit();
      return;
    }
    if (role === "value-choice") {
      node.value = control.value;
    } else if (role === "value-check") {
      var picked = [];
      control.closest("fieldset").querySelectorAll("input[type=checkbox]").forEach(function (box) {
        if (box.checked) picked.push(box.value);
      });
      // Keep values the form does not know (e.g. from JSON) as they were typed.
      node.value = picked.map(function (v) {
        var original = (node.value || []).filter(function (x) { return String(x) === v; })[0];
        return original !== undefined ? original : v;
      });
    } else if (role === "consent") {
      node.consent = control.value;
    } else if (role === "is") {
      node.is = control.value === "true";
    } else if (role === "in_audience") {
      node.in_audience = Number(control.value);
    } else {
      return; // text boxes are handled on input
    }
    commit();
  }

  /* Typing: update the state in place, no re-render (the caret stays where it is). */
  function onInput(event) {
    var control = event.target;
    var role = control.getAttribute("data-role");
    var pointer = control.getAttribute("data-path");
    if (!role || pointer === null || control.tagName === "SELECT" || control.type === "checkbox") return;
    var node = getAt(pointer);
    var text = control.value;
    var type = control.getAttribute("data-type");
    if (role === "raw") return; // applied on change, when the JSON is complete
    if (role === "value") {
      node.value = typed(text, type, node.op);
    } else if (role === "value-part" || role === "value-item") {
      if (!Array.isArray(node.value)) node.value = [];
      node.value[Number(control.getAttribute("data-index"))] = typed(text, type, node.op);
    } else if (role === "value-days") {
      node.value = text === "" ? "" : Number(text);
    } else if (role === "custom-key") {
      node.attr = catalog.custom_prefix + text.trim();
    } else if (role === "event") {
      node.event = text.trim();
    } else if (role === "within_days" || role === "min_count") {
      setMaybeNumber(node, role, text);
    } else if (role === "property") {
      node.property = text.trim();
    } else {
      return;
    }
    commit();
  }

  // --- the JSON view ---------------------------------------------------------------------------

  function parseText(text) {
    try {
      return { ok: true, value: JSON.parse(text.trim() === "" ? '{"all": []}' : text) };
    } catch (error) {
      return { ok: false, error: error.message };
    }
  }

  function onJsonInput() {
    clearTimeout(jsonTimer);
    jsonTimer = setTimeout(function () {
      var parsed = parseText(textarea.value);
      if (!parsed.ok) {
        statusLine.textContent = "The JSON is not valid (" + parsed.error + "). Your text is kept; the builder shows the last valid rules.";
        statusLine.className = "small error";
        textarea.setAttribute("aria-invalid", "true");
        return;
      }
      statusLine.textContent = "";
      statusLine.className = "small";
      textarea.removeAttribute("aria-invalid");
      state = parsed.value;
      valid = true;
      forgetCheckedRuleProblems();
      render(null);
      document.body.dispatchEvent(new CustomEvent(CHANGED, { bubbles: true }));
    }, 300);
  }

  // --- problems beside what they point at -----------------------------------------------------

  function isRulePointer(pointer) {
    return pointer === "/rules" || String(pointer).indexOf("/rules/") === 0;
  }

  /* A problem makes its control invalid; a warning (severity "warning": a name the data
     never had, say) only describes it. */
  function describe(control, id, warning) {
    var ids = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (ids.indexOf(id) < 0) ids.push(id);
    control.setAttribute("aria-describedby", ids.join(" "));
    if (!warning) control.setAttribute("aria-invalid", "true");
  }

  function isWarning(problem) {
    return problem.severity === "warning";
  }

  function problemItem(problem) {
    problemSeq += 1;
    var item = el("li", { id: "rb-problem-" + problemSeq, "data-pointer": problem.pointer, "data-code": problem.code,
      class: isWarning(problem) ? "warning" : null },
      el("strong", { text: (isWarning(problem) ? "Warning: " : "") + (problem.message || problem.detail || problem.code) }));
    if (problem.hint) item.appendChild(el("span", { class: "hint", text: " " + problem.hint }));
    return item;
  }

  function showProblems() {
    document.querySelectorAll(".has-problem").forEach(function (n) { n.classList.remove("has-problem"); });
    document.querySelectorAll(".has-warning").forEach(function (n) { n.classList.remove("has-warning"); });
    document.querySelectorAll("#audience-form [aria-invalid]").forEach(function (n) {
      if (n !== textarea || valid) n.removeAttribute("aria-invalid");
    });
    tree.querySelectorAll(".node-problems").forEach(function (ul) { ul.replaceChildren(); });
    document.querySelectorAll("#audience-form .field-problems").forEach(function (ul) { ul.replaceChildren(); });

    var seen = {};
    var all = [];
    Object.keys(problems).forEach(function (source) {
      (problems[source] || []).forEach(function (p) {
        var key = p.pointer + "|" + p.code + "|" + p.message;
        if (!seen[key]) { seen[key] = true; all.push(p); }
      });
    });
    var inRules = 0;
    var warned = 0;
    all.forEach(function (problem) {
      var pointer = String(problem.pointer || "");
      var item = problemItem(problem);
      var warning = isWarning(problem);
      if (isRulePointer(pointer) && valid) {
        if (warning) warned += 1;
        else inRules += 1;
        var rel = pointer.slice("/rules".length);
        var at = rel;
        var node = null;
        while (true) {
          node = tree.querySelector('.rule-node[data-path="' + at + '"]');
          if (node || at === "") break;
          at = parentPointer(at);
        }
        if (!node) node = tree.querySelector(".rule-node");
        if (!node) return;
        node.classList.add(warning ? "has-warning" : "has-problem");
        node.querySelector(".node-problems[id='" + idFor(node.getAttribute("data-path"), "problems") + "']").appendChild(item);
        var probe = rel;
        while (probe.length >= at.length) {
          var control = node.querySelector('[data-pointer="' + probe + '"]');
          if (control) {
            if (control.tagName === "FIELDSET") control = control.querySelector("input, select") || control;
            describe(control, item.id, warning);
            break;
          }
          if (probe === "") break;
          probe = parentPointer(probe);
        }
        return;
      }
      var field = document.querySelector('#audience-form [data-field-pointer="' + pointer.split("/").slice(0, 2).join("/") + '"]');
      if (!field) field = document.getElementById("builder-problems");
      if (isRulePointer(pointer) && warning) warned += 1;
      else if (isRulePointer(pointer)) inRules += 1;
      field.classList.add(warning ? "has-warning" : "has-problem");
      var list = field.querySelector(".field-problems");
      if (list) list.appendChild(item);
      var input = field.querySelector("input, select, textarea");
      if (input && field.id !== "builder-problems") describe(input, item.id, warning);
    });
    var summary = document.getElementById("builder-problems-summary");
    if (summary) {
      var parts = [];
      if (inRules) parts.push(inRules + (inRules === 1 ? " problem" : " problems"));
      if (warned) parts.push(warned + (warned === 1 ? " warning" : " warnings"));
      var marked = inRules + warned;
      summary.textContent = parts.length ? parts.join(" and ") + " in the rules" + (valid ? ", marked beside " +
        (marked === 1 ? "its condition." : "their conditions.") : ":") : "";
    }
  }

  function applyMarks(detail) {
    var source = (detail && detail.source) || "server";
    problems[source] = detail && Array.isArray(detail.errors) ? detail.errors : [];
  }

  function onProblems(event) {
    applyMarks(event.detail);
    showProblems();
  }

  /* The page and each preview or checks fragment carry <script class="rules-problems">
     ({"source", "errors"}); each is applied once, when it arrives. */
  function readMarks() {
    var found = false;
    document.querySelectorAll("script.rules-problems:not([data-applied])").forEach(function (script) {
      script.setAttribute("data-applied", "true");
      try {
        applyMarks(JSON.parse(script.textContent));
        found = true;
      } catch (error) { /* not ours to break the page over */ }
    });
    if (found) showProblems();
  }

  function onFieldInput(event) {
    var field = event.target.closest("[data-field-pointer]");
    if (!field || field.id === "builder-problems") return;
    var pointer = field.getAttribute("data-field-pointer");
    var changed = false;
    Object.keys(problems).forEach(function (source) {
      var kept = (problems[source] || []).filter(function (p) { return String(p.pointer).indexOf(pointer) !== 0; });
      if (kept.length !== (problems[source] || []).length) changed = true;
      problems[source] = kept;
    });
    if (changed) showProblems();
  }

  // --- start -------------------------------------------------------------------------------------

  function init() {
    textarea = document.getElementById("rules-json");
    tree = document.getElementById("rule-builder");
    var catalogScript = document.getElementById("rule-catalog");
    if (!textarea || !tree || !catalogScript) return;
    catalog = JSON.parse(catalogScript.textContent);
    makeLists();
    statusLine = document.getElementById("rules-json-status");
    var parsed = parseText(textarea.value);
    valid = parsed.ok;
    state = parsed.ok ? parsed.value : null;
    var view = document.getElementById("json-view");
    if (view && parsed.ok) view.open = false;
    if (!parsed.ok && statusLine) {
      statusLine.textContent = "The JSON is not valid (" + parsed.error + "). Fix it here; the builder follows.";
      statusLine.className = "small error";
    }
    tree.setAttribute("data-ready", "true");
    tree.addEventListener("click", onClick);
    tree.addEventListener("change", onChange);
    tree.addEventListener("input", onInput);
    tree.addEventListener("keydown", function (event) {
      // Enter in a value box applies the value; it does not save the whole audience.
      if (event.key === "Enter" && event.target.tagName === "INPUT" && event.target.type !== "checkbox") {
        event.preventDefault();
      }
    });
    textarea.addEventListener("input", onJsonInput);
    var channel = document.getElementById("id_channel");
    if (channel) {
      channel.addEventListener("change", function () {
        document.body.dispatchEvent(new CustomEvent(CHANGED, { bubbles: true }));
      });
    }
    var form = document.getElementById("audience-form");
    if (form) {
      form.addEventListener("input", onFieldInput);
      form.addEventListener("change", onFieldInput);
    }
    document.body.addEventListener(PROBLEMS, onProblems);
    document.body.addEventListener("htmx:afterSettle", readMarks);
    render(null);
    readMarks();
  }

  // Exposed for the browser tests and the console: the rules as the builder holds them.
  window.ruleBuilder = {
    rules: function () { return state === undefined ? undefined : JSON.parse(JSON.stringify(state)); },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
