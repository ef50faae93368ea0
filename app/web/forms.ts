/**
 * The schema of a form's fields (or of a page's query): each is text. Browsers send text, but
 * a form route takes JSON too and a field sent twice arrives as an array, so a handler could
 * meet a number, an object or a list where it calls string methods. Fastify's Ajv turns numbers,
 * booleans and null into text and refuses lists of several values and objects with a 400
 * (QUIESCE_INVALID_INPUT, naming the field); a JSON body that is not an object is refused too.
 * No body at all is an empty form (Fastify validates it as null).
 */
export function textFields (...names: string[]) {
  return {
    type: ['object', 'null'],
    properties: Object.fromEntries(names.map((name) => [name, { type: 'string' }])),
  }
}
