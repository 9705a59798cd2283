/**
 * DIRAC's JDL: a ClassAd-like list of `Name = value;` attributes, with or without the enclosing
 * `[ ... ]`. Values are quoted strings, bare words (DIRAC's parser takes `JobType = User;`,
 * `OutputSandbox = {std.out, std.err};` and the placeholder `%(InputData)s` as strings), numbers, booleans, lists `{...}` (nested too),
 * sub-ads `[...]`, and ClassAd expressions (`other.Site == "X"`, `member(...)`), kept as their
 * source text. Comments: `#`, `//` and `/* *\/`. Parsed with Ohm (a PEG toolkit): a malformed file
 * is refused with the line and column where it stops making sense.
 */
import * as ohm from 'ohm-js';
import { PilothouseError } from '../errors.ts';

export interface SourcePosition {
  line: number;
  column: number;
}

export type JdlValue =
  | { kind: 'string'; value: string; quoted: boolean; at: SourcePosition }
  | { kind: 'number'; value: number; text: string; at: SourcePosition }
  | { kind: 'boolean'; value: boolean; at: SourcePosition }
  | { kind: 'list'; items: JdlValue[]; at: SourcePosition }
  | { kind: 'ad'; attributes: JdlAttribute[]; at: SourcePosition }
  | { kind: 'expression'; text: string; at: SourcePosition };

export interface JdlAttribute {
  name: string;
  value: JdlValue;
  at: SourcePosition;
}

const grammar = ohm.grammar(String.raw`
JDL {
  Document = Ad end        -- bracketed
           | Body end      -- bare
  Ad = "[" Body "]"
  Body = ";"* ListOf<Attribute, Separator> ";"*
  Separator = ";"+
  Attribute = name "=" Expr

  Expr = Expr "||" AndExpr  -- or
       | AndExpr
  AndExpr = AndExpr "&&" CmpExpr  -- and
          | CmpExpr
  CmpExpr = CmpExpr cmpOp SumExpr  -- cmp
          | SumExpr
  SumExpr = SumExpr sumOp Unary  -- sum
          | Unary
  Unary = "!" Unary  -- not
        | Primary
  Primary = "(" Expr ")"  -- paren
          | List
          | Ad
          | word "(" ListOf<Expr, ","> ")"  -- call
          | string
          | word

  List = "{" ListOf<Expr, ","> ","? "}"

  name = (letter | "_") (alnum | "_" | "." | "-")*
  cmpOp = "==" | "!=" | "<=" | ">=" | "=?=" | "=!=" | "<" | ">"
  sumOp = ("+" | "-" | "*" | "/") &space
  string = "\"" stringChar* "\""
  stringChar = "\\" any  -- escaped
             | ~("\"" | "\n") any
  word = wordPart+
  wordPart = "%(" (~(")" | space | ";") any)* ")"  -- placeholder
           | wordChar
  wordChar = ~(space | ";" | "," | "{" | "}" | "[" | "]" | "=" | "\"" | "(" | ")" | "!" | "<" | ">" | "&" | "|") any

  space += comment
  comment = "//" (~"\n" any)*  -- line
          | "/*" (~"*/" any)* "*/"  -- block
          | "#" (~"\n" any)*  -- hash
}
`);

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function position(node: ohm.Node): SourcePosition {
  const interval = node.source;
  const { lineNum, colNum } = interval.getLineAndColumn();
  return { line: lineNum, column: colNum };
}

function wordValue(text: string, at: SourcePosition): JdlValue {
  if (NUMBER.test(text)) return { kind: 'number', value: Number(text), text, at };
  const lower = text.toLowerCase();
  if (lower === 'true' || lower === 'false') return { kind: 'boolean', value: lower === 'true', at };
  return { kind: 'string', value: text, quoted: false, at };
}

const semantics = grammar.createSemantics();
semantics.addOperation<unknown>('build', {
  Document_bracketed: (ad, _end) => ad.build(),
  Document_bare: (body, _end) => body.build(),
  Ad: (_open, body, _close) => body.build(),
  Body: (_lead, attributes, _trail) => attributes.asIteration().children.map((child) => child.build()),
  Attribute(name, _eq, expr): JdlAttribute {
    return { name: name.sourceString, value: expr.build() as JdlValue, at: position(name) };
  },
  // Expressions are kept as their text (Ohm checks each action's arity, hence the named parameters).
  Expr_or(_left, _op, _right) {
    return expression(this);
  },
  AndExpr_and(_left, _op, _right) {
    return expression(this);
  },
  CmpExpr_cmp(_left, _op, _right) {
    return expression(this);
  },
  SumExpr_sum(_left, _op, _right) {
    return expression(this);
  },
  Unary_not(_op, _operand) {
    return expression(this);
  },
  Primary_paren(_open, _expr, _close) {
    return expression(this);
  },
  Primary_call(_name, _open, _args, _close) {
    return expression(this);
  },
  List(_open, items, _comma, _close): JdlValue {
    return {
      kind: 'list',
      items: items.asIteration().children.map((item) => item.build() as JdlValue),
      at: position(this),
    };
  },
  Primary(child) {
    if (child.ctorName === 'Ad') return { kind: 'ad', attributes: child.build(), at: position(child) };
    return child.build();
  },
  string(_open, chars, _close): JdlValue {
    const value = chars.children.map((c) =>
      c.ctorName === 'stringChar_escaped' ? unescape(c.sourceString) : c.sourceString,
    );
    return { kind: 'string', value: value.join(''), quoted: true, at: position(this) };
  },
  word(_chars): JdlValue {
    return wordValue(this.sourceString, position(this));
  },
});

function expression(node: ohm.Node): JdlValue {
  return { kind: 'expression', text: node.sourceString.replace(/\s+/g, ' '), at: position(node) };
}

/** `\"` and `\\` stand for the character; any other backslash is kept (regular expressions, paths). */
function unescape(pair: string): string {
  return pair === '\\"' || pair === '\\\\' ? pair.slice(1) : pair;
}

/** Parses a JDL document (with or without `[ ]`); JDL_INVALID with line and column when malformed. */
export function parseClassAd(text: string, source = 'JDL'): JdlAttribute[] {
  const match = grammar.match(text);
  if (match.failed()) {
    const offset = match.getRightmostFailurePosition();
    const { line, column } = lineAndColumn(text, offset);
    const token = text.slice(offset).match(/^[^\s;]{1,20}|^;/)?.[0];
    const found = token === undefined ? 'the end of the file' : JSON.stringify(token);
    const inString = ((text.slice(0, offset).split('\n').at(-1) ?? '').match(/(?<!\\)"/g)?.length ?? 0) % 2 === 1;
    const what = inString ? 'a closing " (a string ends on the line it starts)' : expectedText(match);
    throw new PilothouseError('JDL_INVALID', `${source}:${line}:${column}: expected ${what}, found ${found}`, {
      line,
      column,
    });
  }
  return semantics(match).build() as JdlAttribute[];
}

const OPERATORS = new Set(['||', '&&', '==', '!=', '<=', '>=', '=?=', '=!=', '<', '>', '+', '-', '*', '/']);
const VALUE_STARTS = new Set(['"', '[', '{', '(', '!', '%(']);

/** What the parser wanted where it stopped, in words (Ohm lists every token; operators are noise here). */
function expectedText(match: ohm.MatchResult): string {
  // Not in Ohm's typings, but part of its MatchResult: the failures at the rightmost position.
  const failures = (match as unknown as { getRightmostFailures(): { getText(): string }[] }).getRightmostFailures();
  const wanted = new Set<string>();
  for (const failure of failures) {
    const text = failure.getText();
    if (OPERATORS.has(text)) continue;
    if (text.startsWith('not ') || VALUE_STARTS.has(text)) wanted.add('a value');
    else if (text === '_' || text === 'a letter') wanted.add('an attribute name');
    else if (text === 'end of input') wanted.add('the end of the file');
    else wanted.add(JSON.stringify(text));
  }
  const list = [...wanted];
  return list.length <= 1 ? (list[0] ?? 'something else') : `${list.slice(0, -1).join(', ')} or ${list.at(-1)}`;
}

function lineAndColumn(text: string, offset: number): SourcePosition {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}
