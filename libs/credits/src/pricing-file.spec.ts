import { parsePricing, PricingFileError } from './pricing-file';
import { decimalPlaces } from './pricing.math';

describe('decimalPlaces', () => {
  it('counts the places of the number as written, exponent form included', () => {
    expect(decimalPlaces(5)).toBe(0);
    expect(decimalPlaces(1e12)).toBe(0);
    expect(decimalPlaces(0.000001)).toBe(6);
    expect(decimalPlaces(123456.123456)).toBe(6);
    expect(decimalPlaces(0.0000001)).toBe(7);
    expect(decimalPlaces(1.5e-7)).toBe(8);
    expect(decimalPlaces(0.1 + 0.2)).toBe(17);
  });
});

describe('parsePricing (the pricing: section of PROVIDERS_FILE)', () => {
  const parse = (entry: Record<string, unknown>) => () =>
    parsePricing([{ model: 'm', ...entry }], 'providers.yaml');

  it('takes prices with up to 6 decimals, numbers or ${VAR} strings', () => {
    expect(parsePricing([{ model: 'm', per_request: 0.000001, per_image: '2.5' }], 'f')).toEqual([
      {
        model: 'm',
        perRequest: 0.000001,
        per1kPromptTokens: 0,
        per1kCompletionTokens: 0,
        perImage: 2.5,
        perImageBySize: {},
      },
    ]);
  });

  it.each([
    ['per_request', { per_request: 0.0000001 }],
    ['per_1k_prompt_tokens', { per_1k_prompt_tokens: 1.0000001 }],
    ['per_1k_completion_tokens', { per_1k_completion_tokens: '0.0000005' }],
    ['per_image', { per_image: 40.1234567 }],
    ['per_image_by_size.1024x1024', { per_image_by_size: { '1024x1024': 0.0000001 } }],
  ])('stops the boot on a %s with more than 6 decimals, naming it', (field, entry) => {
    expect(parse(entry)).toThrow(PricingFileError);
    expect(parse(entry)).toThrow(
      `providers.yaml: pricing[0].${field}: must have at most 6 decimal places`,
    );
  });
});
